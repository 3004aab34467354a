//! The worker marker that the parent puts in the environment.

#![no_main]

use concurrent_futures::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzzing::marker(data);
});
