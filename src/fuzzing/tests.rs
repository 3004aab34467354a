//! Tests of the fuzz entry points, and the seed corpus in `fuzz/seeds/`.

use std::path::{Path, PathBuf};

use super::*;

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
    }
}

fn task(payload: &[u8]) -> Vec<u8> {
    let (call, func, count) = (0x1000, 0x2000, 2);
    frame(&Message::Task { call, func, count }, payload)
}

/// The seed inputs, as (target, file name, bytes).
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let limit = |max: u32| max.to_le_bytes()[..3].to_vec();
    let arguments: [TaskArgument; 2] = [(7, "seven".into(), vec![1, 2, 3]), (0, "".into(), vec![])];
    let mut items = Vec::new();
    for argument in &arguments {
        wire::push_item(&mut items, argument).unwrap();
    }
    let mut bad_items = items.clone();
    wire::push_item(&mut bad_items, &"not a tuple").unwrap();
    bad_items.extend_from_slice(&[9, 0, 0, 0, 1]);
    let mut done = Vec::new();
    let panicked = PanicInfo {
        message: "boom".into(),
        location: Some("src/main.rs:1:1".into()),
    };
    wire::push_outcome(
        &mut done,
        outcome::OK,
        &postcard::to_allocvec(&(1u64, "one")).unwrap(),
    );
    wire::push_outcome(
        &mut done,
        outcome::PANICKED,
        &postcard::to_allocvec(&panicked).unwrap(),
    );
    wire::push_outcome(&mut done, outcome::BAD_ARGUMENT, b"unexpected end");
    wire::push_outcome(&mut done, outcome::BAD_RESULT, b"too long");
    let (count, elapsed_nanos) = (4, 1234);
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
    let mut many_items = Vec::new();
    for i in 0..40u64 {
        let argument: TaskArgument = (i, "x".repeat(i as usize), vec![0; 3]);
        wire::push_item(&mut many_items, &argument).unwrap();
    }
    let mut all = vec![
        (
            "frame",
            "hello",
            [limit(4096), frame(&hello(version, TOKEN, None), &[])].concat(),
        ),
        ("frame", "task", [limit(4096), task(&items)].concat()),
        (
            "frame",
            "done",
            [
                limit(4096),
                frame(
                    &Message::Done {
                        count,
                        elapsed_nanos,
                    },
                    &done,
                ),
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
            [limit(4096), task(&items), task(&many_items)].concat(),
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
                &[task(&items), task(&bad_items)].concat(),
            ),
        ),
        (
            "handshake",
            "initializer",
            start(hello(version, TOKEN, Some(0x3000)), &task(&items)),
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
    for (kind, name) in [(0u8, "hello"), (3, "init_failed"), (4, "task"), (5, "done")] {
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
        for target in ["frame", "handshake", "marker", "round_trip"] {
            run_target(target, &data);
        }
    }
}
