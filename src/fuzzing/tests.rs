//! Tests of the fuzz entry points, and the seed corpus in `fuzz/seeds/`.

use std::path::{Path, PathBuf};

use super::*;
use crate::process_pool::wire::{outcome, PanicInfo};

const TOKEN: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;

fn frame(message: &Message, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_frame(message, payload, wire::DEFAULT_MAX_FRAME, &mut out).unwrap();
    out
}

fn hello(version: u32, token: u128, initializer: Option<u64>) -> Message {
    Message::Hello {
        version,
        token,
        exe: HANDSHAKE_EXE,
        probe: HANDSHAKE_PROBE,
        initializer,
        max_frame: 1 << 16,
        region_fd: 5,
        arena_fd: None,
    }
}

fn task(payload: &[u8], count: u32, slot: u8) -> Vec<u8> {
    let (call, func) = (0x1000, 0x2000);
    frame(
        &Message::Task {
            call,
            func,
            count,
            slot,
        },
        payload,
    )
}

/// An outcome as the seeds spell it: a value's bytes, or a failure's tag
/// and detail.
type Outcome = Result<Vec<u8>, (u8, Vec<u8>)>;

/// Outcomes written as the worker writes a slot: (ends, data).
fn slot_of(outcomes: &[Outcome]) -> (Vec<u32>, Vec<u8>) {
    let (mut ends, mut data) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        match outcome {
            Ok(value) => {
                data.extend_from_slice(value);
                ends.push(data.len() as u32);
            }
            Err((tag, detail)) => {
                data.push(*tag);
                data.extend_from_slice(detail);
                ends.push(data.len() as u32 | FAILED);
            }
        }
    }
    (ends, data)
}

/// The same outcomes as a `Partial` payload.
fn payload_of(outcomes: &[Outcome]) -> Vec<u8> {
    let (ends, data) = slot_of(outcomes);
    let mut payload = Vec::new();
    Block::from_slot(&ends, &data, ends.len())
        .unwrap()
        .write_payload(&mut payload);
    payload
}

/// The bulk payload of `values`.
fn bulk<T: serde::Serialize>(values: &[T]) -> Vec<u8> {
    let mut payload = Vec::new();
    for value in values {
        wire::push_value(&mut payload, value).unwrap();
    }
    payload
}

/// The seed inputs, as (target, file name, bytes).
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let limit = |max: u32| max.to_le_bytes()[..3].to_vec();
    let arguments: [TaskArgument; 2] = [(7, "seven".into(), vec![1, 2, 3]), (0, "".into(), vec![])];
    let items = bulk(&arguments);
    let mut bad_items = items.clone();
    wire::push_value(&mut bad_items, &"not a tuple").unwrap();
    bad_items.extend_from_slice(&[9, 0, 0, 0, 1]);
    let panicked = PanicInfo {
        message: "boom".into(),
        location: Some("src/main.rs:1:1".into()),
    };
    let mixed = [
        Ok(wire::to_vec(&(1u64, "one")).unwrap()),
        Err((outcome::PANICKED, postcard::to_allocvec(&panicked).unwrap())),
        Err((outcome::BAD_ARGUMENT, b"unexpected end".to_vec())),
        Err((outcome::BAD_RESULT, b"too long".to_vec())),
    ];
    let values = [
        Ok(wire::to_vec(&(1u64, "one")).unwrap()),
        Ok(wire::to_vec(&(2u64, "two")).unwrap()),
        Ok(wire::to_vec(&(3u64, "")).unwrap()),
    ];
    let partial = |count: u32| Message::Partial { slot: 0, count };
    let done = Message::Done {
        slot: 1,
        count: 4,
        failed: 3,
        elapsed_nanos: 1234,
    };
    let ready = Message::Ready {
        version: wire::VERSION,
        token: TOKEN,
        pid: 42,
    };
    let failed = Message::InitFailed {
        reason: "no database".into(),
    };
    let line = format!("v1:3:4:{TOKEN:032x}");
    let start = |hello: Message, rest: &[u8]| {
        [
            format!("{line}\n").into_bytes(),
            frame(&hello, &[]),
            rest.to_vec(),
        ]
        .concat()
    };
    let version = wire::VERSION;
    let long = Message::InitFailed {
        reason: "a reason longer than the head that the reader guesses ".repeat(6),
    };
    let many: Vec<TaskArgument> = (0..40u64)
        .map(|i| (i, "x".repeat(i as usize), vec![0; 3]))
        .collect();
    let many_items = bulk(&many);
    let (slot_ends, slot_data) = slot_of(&mixed);
    let slot_seed = |count: u8| {
        let mut bytes = vec![slot_ends.len() as u8, count];
        for end in &slot_ends {
            bytes.extend_from_slice(&end.to_le_bytes());
        }
        [bytes, slot_data.clone()].concat()
    };
    let mut all = vec![
        (
            "frame",
            "hello",
            [limit(4096), frame(&hello(version, TOKEN, None), &[])].concat(),
        ),
        ("frame", "task", [limit(4096), task(&items, 2, 0)].concat()),
        (
            "frame",
            "task_shared",
            [
                limit(4096),
                frame(
                    &Message::TaskShared {
                        call: 0x1000,
                        func: 0x2000,
                        count: 3,
                        slot: 1,
                        at: 65_536,
                        len: 24,
                    },
                    &[],
                ),
            ]
            .concat(),
        ),
        (
            "frame",
            "done",
            [
                limit(4096),
                frame(&done, &[]),
                frame(&Message::Skipped { slot: 0 }, &[]),
            ]
            .concat(),
        ),
        (
            "frame",
            "partial",
            [
                limit(4096),
                frame(&partial(4), &payload_of(&mixed)),
                frame(&partial(3), &payload_of(&values)),
            ]
            .concat(),
        ),
        (
            "frame",
            "descriptors",
            [
                limit(4096),
                frame(&Message::Descriptors { count: 2 }, &[]),
                task(&items, 2, 1),
            ]
            .concat(),
        ),
        (
            "frame",
            "start",
            [
                limit(4096),
                frame(&ready, &[]),
                frame(&Message::Initialized, &[]),
                frame(&failed, &[]),
            ]
            .concat(),
        ),
        (
            "frame",
            "long_header",
            [limit(4096), frame(&long, &[])].concat(),
        ),
        (
            "frame",
            "long_task",
            [limit(4096), task(&items, 2, 0), task(&many_items, 40, 1)].concat(),
        ),
        (
            "frame",
            "too_large",
            [limit(16), frame(&hello(version, TOKEN, None), &[])].concat(),
        ),
        (
            "handshake",
            "tasks",
            start(
                hello(version, TOKEN, None),
                &[
                    task(&items, 2, 0),
                    task(&bad_items, 4, 1),
                    task(&many_items, 40, 0),
                    task(&items, 1, 1),
                    task(&items, 0, 0),
                ]
                .concat(),
            ),
        ),
        (
            "handshake",
            "initializer",
            start(hello(version, TOKEN, Some(0x3000)), &task(&items, 2, 0)),
        ),
        (
            "handshake",
            "wrong_token",
            start(hello(version, TOKEN ^ 1, None), &[]),
        ),
        (
            "handshake",
            "other_version",
            start(hello(version + 1, TOKEN, None), &[]),
        ),
        ("marker", "valid", line.clone().into_bytes()),
        ("marker", "short_token", b"v1:10:11:ff".to_vec()),
        (
            "marker",
            "other_version",
            line.replacen("v1", "v2", 1).into_bytes(),
        ),
    ];
    all.extend([
        (
            "encodings",
            "partial",
            [4u16.to_le_bytes().to_vec(), payload_of(&mixed)].concat(),
        ),
        (
            "encodings",
            "partial_values",
            [3u16.to_le_bytes().to_vec(), payload_of(&values)].concat(),
        ),
        ("encodings", "slot", slot_seed(4)),
        ("encodings", "slot_past_ends", slot_seed(5)),
        (
            "encodings",
            "arguments",
            [2u32.to_le_bytes().to_vec(), items.clone()].concat(),
        ),
        (
            "encodings",
            "bad_arguments",
            [4u32.to_le_bytes().to_vec(), bad_items.clone()].concat(),
        ),
        (
            "encodings",
            "plain_arguments",
            [
                3u32.to_le_bytes().to_vec(),
                [7u64, 0, u64::MAX].map(u64::to_le_bytes).concat(),
            ]
            .concat(),
        ),
    ]);
    for (kind, name) in [
        (0u8, "hello"),
        (3, "init_failed"),
        (4, "task"),
        (5, "done"),
        (6, "partial"),
        (7, "skipped"),
        (8, "descriptors"),
    ] {
        let bytes = (0..96u8)
            .map(|i| i.wrapping_mul(37) ^ kind)
            .collect::<Vec<_>>();
        all.push(("round_trip", name, [vec![kind], bytes].concat()));
    }
    all
}

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

fn run_target(target: &str, data: &[u8]) {
    match target {
        "frame" => frames(data, || 0),
        "handshake" => handshake(data),
        "marker" => marker(data),
        "round_trip" => round_trip(data),
        "encodings" => encodings(data, || 0),
        _ => panic!("no fuzz target {target}"),
    }
}

#[test]
fn every_seed_passes_its_target() {
    for (target, name, bytes) in seeds() {
        let caught = std::panic::catch_unwind(|| run_target(target, &bytes));
        assert!(caught.is_ok(), "seed {target}/{name} fails");
    }
}

/// Also runs the inputs saved from crashes, which sit beside the seeds.
#[test]
fn every_file_in_the_seed_corpus_passes_its_target() {
    let Ok(targets) = std::fs::read_dir(seed_dir()) else {
        return; // a packaged crate has no fuzz directory
    };
    for target in targets {
        let target = target.unwrap().path();
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&target).unwrap() {
            let file = file.unwrap().path();
            let bytes = std::fs::read(&file).unwrap();
            let caught = std::panic::catch_unwind(|| run_target(&name, &bytes));
            assert!(caught.is_ok(), "{} fails", file.display());
        }
    }
}

#[test]
fn the_valid_seeds_get_past_the_greeting() {
    for (target, name, bytes) in seeds() {
        if target != "handshake" || !matches!(name, "tasks" | "initializer") {
            continue;
        }
        let at = bytes.iter().position(|&b| b == b'\n').unwrap();
        let marker = entry::parse_marker(std::str::from_utf8(&bytes[..at]).unwrap()).unwrap();
        let greeting = entry::greet(
            &mut &bytes[at + 1..],
            &mut Vec::new(),
            &mut Vec::new(),
            marker.token,
            || Ok(HANDSHAKE_EXE),
            HANDSHAKE_PROBE,
        );
        assert!(greeting.is_ok(), "{name}: {greeting:?}");
    }
}

#[test]
fn the_seed_corpus_is_current() {
    if !seed_dir().exists() {
        return;
    }
    for (target, name, bytes) in seeds() {
        let path = seed_dir().join(target).join(name);
        assert!(
            std::fs::read(&path).is_ok_and(|on_disk| on_disk == bytes),
            "{} is missing or stale: run `cargo test --features fuzzing -- --ignored write_seed_corpus`",
            path.display()
        );
    }
}

#[test]
#[ignore = "writes fuzz/seeds; run after a change to the wire format"]
fn write_seed_corpus() {
    for (target, name, bytes) in seeds() {
        let dir = seed_dir().join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

proptest::proptest! {
    #[test]
    fn every_target_takes_random_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        for target in ["frame", "handshake", "marker", "round_trip", "encodings"] {
            run_target(target, &data);
        }
    }
}

/// A task of more items than a slot has ends: the worker hands the full
/// slot over in a `Partial` and starts it over; the parent's decoding of
/// the `Partial` and the slot gives every item its outcome.
#[test]
fn a_task_past_a_full_slot_goes_out_in_a_partial() {
    let count = crate::process_pool::sys::region::MAX_ITEMS + 1000;
    let arguments: Vec<TaskArgument> = (0..count as u64)
        .map(|i| (i % 100, String::new(), Vec::new()))
        .collect();
    let payload = bulk(&arguments);
    assert_eq!(
        worker::run_task(&payload, count as u32, 1, 16 << 20),
        Some(1)
    );
    // Under a limit too small for that Partial, the task is not run.
    assert_eq!(worker::run_task(&payload, count as u32, 1, 1 << 20), None);
    assert_eq!(worker::run_task(&payload, 2, 2, 1 << 20), None);
}

#[test]
fn a_task_runs_its_items_into_the_slot() {
    let arguments: [TaskArgument; 3] = [
        (1, "one".into(), vec![1]),
        (2, "two".into(), vec![]),
        (3, "three".into(), vec![0; 100]),
    ];
    let payload = bulk(&arguments);
    for count in 0..=4 {
        assert_eq!(worker::run_task(&payload, count, 0, 1 << 16), Some(0));
    }
    // A limit under which no result fits: every item is a bad result.
    assert_eq!(worker::run_task(&payload, 3, 1, 32), Some(0));
}

/// A seed with random bytes changed, inserted or removed.
fn mutated() -> impl proptest::strategy::Strategy<Value = (&'static str, Vec<u8>)> {
    use proptest::prelude::*;
    let seeds: Vec<(&'static str, Vec<u8>)> = seeds()
        .into_iter()
        .map(|(target, _, bytes)| (target, bytes))
        .collect();
    (
        proptest::sample::select(seeds),
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8),
    )
        .prop_map(|((target, mut bytes), edits)| {
            for (at, byte, kind) in edits {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ if at < bytes.len() => bytes[at] ^= 1 << (byte % 8),
                    _ => bytes.push(byte),
                }
            }
            (target, bytes)
        })
}

proptest::proptest! {
    #[test]
    fn every_target_takes_mutated_seeds((target, data) in mutated()) {
        run_target(target, &data);
    }
}
