//! A worker's start: its marker line, the parent's greeting, its answer,
//! and the tasks that follow, run through the real trampoline.

#![no_main]

use concurrent_futures::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzzing::handshake(data);
});
