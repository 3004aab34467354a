//! Frames off a byte stream: the reader and the decoders of a payload's
//! arguments and outcome blocks, with every single allocation counted.

#![no_main]

mod counting;

use concurrent_futures::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzzing::frames(data, counting::largest_allocation);
});
