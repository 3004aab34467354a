//! Encoders against decoders: frames, items, outcomes and markers built
//! from the input go through unchanged, and limits hold on both sides.

#![no_main]

use concurrent_futures::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzzing::round_trip(data);
});
