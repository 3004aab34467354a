//! The region protocol's encodings: a `Partial` payload and a slot of the
//! shared region decoded as the parent reads outcomes, a task's bulk
//! arguments as the worker reads them, with every single allocation
//! counted.

#![no_main]

mod counting;

use concurrent_futures::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzzing::encodings(data, counting::largest_allocation);
});
