//! The worker's side of a task, as the `handshake` target runs it: the real
//! trampoline, its outcomes written into a real shared region, and the
//! `Partial` frames it sends written into a file that stands in for the
//! result pipe; then the parent's decoding of all of it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Mutex, OnceLock};

use serde::Deserialize;

use super::parent;
use super::{task_function, TaskArgument, TaskResult};
use crate::process_pool::entry;
use crate::process_pool::outcomes::{Outcomes, Sink};
use crate::process_pool::sys::region::{self, Region};
use crate::process_pool::wire::{self, Block, Entry, Message};
use crate::Error;

/// What a worker keeps from task to task: its region and its result pipe.
#[derive(Debug)]
struct Worker {
    region: Region,
    results: File,
}

/// The one worker of this process, made on first use (a region is 17 MiB
/// of address space, a fresh one per input would cost more than the run).
fn worker() -> &'static Mutex<Worker> {
    static WORKER: OnceLock<Mutex<Worker>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let region = match Region::create() {
            Ok(region) => region,
            Err(e) => panic!("cannot make a shared region for the fuzz worker: {e}"),
        };
        Mutex::new(Worker {
            region,
            results: results_file(),
        })
    })
}

/// A file of its own, already unlinked, for the worker's frames.
fn results_file() -> File {
    let dir = std::env::temp_dir();
    for attempt in 0u32.. {
        let path = dir.join(format!(
            "concurrent-futures-fuzz-{}-{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                let _ = std::fs::remove_file(&path);
                return file;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("cannot make {}: {e}", path.display()),
        }
    }
    unreachable!("u32 attempts ran out")
}

/// The outcome the worker must give each item of a task of `count` items
/// over `payload`, by the rules: an argument that decodes gives the test
/// function's result (or a bad result, if it is over the frame limit
/// `max`); the first one that does not gives a bad argument, and ends the
/// task. `None` for a bad argument.
fn expected(payload: &[u8], count: u32, max: u32) -> Vec<Option<Result<TaskResult, ()>>> {
    let limit = (max as usize).saturating_sub(64);
    let mut arguments = wire::Deserializer::new(payload);
    let mut out = Vec::new();
    for _ in 0..count {
        match TaskArgument::deserialize(&mut arguments) {
            Ok(argument) => {
                let result = task_function(argument);
                let fits = wire::to_vec(&result).is_ok_and(|b| b.len() <= limit);
                out.push(Some(if fits { Ok(result) } else { Err(()) }));
            }
            Err(_) => {
                out.push(None);
                break;
            }
        }
    }
    out
}

/// Runs a task of `count` items over `payload` through the trampoline,
/// outcomes into `slot`, with the frame limit `max`, and checks what the
/// parent decodes from the frames and the slot: exactly the outcomes the
/// rules give ([`expected`]), and a `Done` whose counts fit the slot.
/// Returns the number of `Partial` frames the worker sent, or `None` for a
/// task that was not run:
///
/// a task that could fill a slot (at least [`region::MAX_ITEMS`] bytes of
/// arguments) under a limit too small for a full slot's `Partial` is not
/// run: the worker would find its frame over the limit and exit. Nor is a
/// task for a slot the region does not have (the worker refuses it).
///
/// # Panics
///
/// If an outcome is not the expected one, the frames are not `Partial`s
/// that decode, or the `Done` counts are off.
pub(super) fn run_task(payload: &[u8], count: u32, slot: u8, max: u32) -> Option<usize> {
    let slot = usize::from(slot);
    let full_slot = region::MAX_ITEMS * 4 + region::DATA + 64;
    if slot >= region::SLOTS || (payload.len() >= region::MAX_ITEMS && (max as usize) < full_slot) {
        return None;
    }
    let want = expected(payload, count, max);
    let mut worker = match worker().lock() {
        Ok(worker) => worker,
        Err(poisoned) => poisoned.into_inner(),
    };
    let Worker { region, results } = &mut *worker;
    if let Err(e) = results.set_len(0).and_then(|()| results.rewind()) {
        panic!("cannot empty the result file: {e}");
    }
    let (mut scratch, mut spill) = (Vec::new(), Vec::new());
    let (held, failed) = {
        let mut outcomes = Outcomes::new(
            region,
            slot,
            Sink::Pipe(results),
            max,
            &mut scratch,
            &mut spill,
        );
        let func = task_function as fn(TaskArgument) -> TaskResult as usize;
        entry::trampoline::<TaskArgument, TaskResult>(func, payload, count, &mut outcomes);
        outcomes.done_counts()
    };
    let mut sent = Vec::new();
    if let Err(e) = results
        .seek(SeekFrom::Start(0))
        .and_then(|_| results.read_to_end(&mut sent))
    {
        panic!("cannot read the result file back: {e}");
    }

    let mut frames = Vec::new();
    let mut stream = sent.as_slice();
    while !stream.is_empty() {
        match wire::read_frame(&mut stream, max) {
            Ok(wire::Frame {
                message: Message::Partial { slot: at, count },
                payload,
            }) if usize::from(at) == slot => frames.push((count, payload)),
            other => panic!("the worker sent {other:?} during its task"),
        }
    }
    let view = region.slot(slot);
    let done = match Block::from_view(view, 0, held as usize) {
        Ok(block) => block,
        Err(e) => panic!("the worker's Done names {held} outcomes: {e}"),
    };
    let failures = (0..done.len())
        .filter(|&i| matches!(done.entry(i), Ok(Entry::Failed(..))))
        .count();
    assert_eq!(failures, failed as usize, "Done counts other failures");
    let mut blocks = Vec::new();
    for (count, bytes) in &frames {
        match Block::from_payload(bytes, *count as usize) {
            Ok(block) => blocks.push((block, false)),
            Err(e) => panic!("the worker's Partial does not decode: {e}"),
        }
    }
    blocks.push((done, failed == 0));
    let total: usize = blocks.iter().map(|(block, _)| block.len()).sum();
    assert_eq!(total, want.len(), "outcomes for other items than ran");

    let got = parent::decode::<TaskResult>(&blocks, want.len());
    for (index, (got, want)) in got.iter().zip(&want).enumerate() {
        let fits = match want {
            Some(Ok(value)) => got.as_ref() == Ok(value),
            Some(Err(())) => matches!(got, Err(Error::Encode { what: "result", .. })),
            None => matches!(
                got,
                Err(Error::Decode {
                    what: "argument",
                    ..
                })
            ),
        };
        assert!(fits, "item {index} gave {got:?}, not {want:?}");
    }
    Some(frames.len())
}
