//! Bad input on the process pool's pipes, in both directions.
//!
//! Parent → worker: this test binary is started by hand with the worker
//! marker and real pipes, and fed hand-made frames: garbage, frames cut
//! short, a huge length prefix, a wrong protocol version or token, a
//! message out of place — both in the greeting and after it. Each must
//! make the process exit with status 86 and a clear message on its
//! standard error, having executed nothing. "Nothing" is checked twice:
//! the bad bytes are followed by a well-formed task that would create a
//! file (unless they are a frame cut short, which anything after them would
//! complete: then end of file follows), and the command line asks the test
//! harness to run a test that would create another file — neither may
//! appear. A control with the same bytes minus the bad frame shows that
//! the task does run and its file does appear. Items that do not decode
//! inside a well-formed task fail alone, without running, and the worker
//! goes on.
//!
//! Worker → parent: a task that writes garbage into its own result pipe
//! fails alone with [`Error::Protocol`] (or, if it cuts a frame short and
//! exits, with [`Error::WorkerDied`]), and the pool goes on.
//!
//! # How the frames are made
//!
//! From the format documented in `src/process_pool/wire.rs`:
//! `len:u32 LE ‖ postcard(Message) ‖ payload`, a task's payload being its
//! items' postcard bytes one after another. Outcomes are written into the
//! worker's shared region (a sealed memfd this test makes, passed at
//! descriptor [`REGION_FD`]), read back here with `pread` at the offsets
//! the layout fixes. [`Message`] below mirrors the crate's private enum
//! variant for variant (postcard encodes a variant by its index, so the
//! names do not matter).
//!
//! A greeting that passes must carry the offset of the crate's private
//! probe function from its anchor, and a task the offsets of a trampoline
//! and of the user's function. No public API gives these, so they are read
//! from this binary's ELF symbol table (test binaries are not stripped).
//! That is why every task in this file is an `fn(String) -> bool`: the
//! binary then holds exactly one instance of the generic trampoline, and
//! its symbol is unambiguous. [`offsets`] checks this and says so if a
//! change breaks it.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use concurrent_futures::{Chunksize, Error, ProcessPoolExecutor};
use serde::{Deserialize, Serialize};

mod common;
use common::TempDir;

// ------------------------------------------------------------ the tasks

/// The task of every hand-made frame: its only effect is a file, which
/// proves whether it ran.
fn touch(path: String) -> bool {
    std::fs::write(path, b"ran").is_ok()
}

/// Environment variable naming the file [`main_ran`] creates.
const MAIN_RAN: &str = "CF_BAD_INPUT_MAIN_RAN";

/// The test that the would-be workers' command line asks the harness to
/// run. It runs only if a would-be worker got past the marker into `main`.
#[test]
#[ignore = "a helper: runs only if a rejected worker wrongly reaches main"]
fn main_ran() {
    if let Ok(path) = std::env::var(MAIN_RAN) {
        std::fs::write(path, b"main ran").expect("write the main-ran file");
    }
}

// ------------------------------------------------------ the wire format

/// The crate's wire version (`wire::VERSION`).
const VERSION: u32 = 3;

/// Where a would-be worker finds its shared region.
const REGION_FD: RawFd = 100;

/// The region's layout (`sys::region`): a 4096-byte header, then each
/// slot's ends (2^16 u32s), then each slot's data (8 MiB).
const REGION_HEADER: usize = 4096;
const REGION_ENDS: usize = (1 << 16) * 4;
const REGION_DATA: usize = 8 << 20;
const REGION_LEN: usize = REGION_HEADER + 2 * (REGION_ENDS + REGION_DATA);

/// Bit 31 of an outcome's end: a failure (`wire::FAILED`).
const FAILED: u32 = 1 << 31;

/// The worker's exit status when it refuses to start (`entry::BAD_START`).
const BAD_START: i32 = 86;

/// The largest greeting a worker reads (`entry::HELLO_LIMIT`).
const HELLO_LIMIT: u32 = 4096;

/// The frame limit the hand-made greetings announce.
const MAX_FRAME: u32 = 1 << 20;

/// A mirror of the crate's `wire::Message`, variant for variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Message {
    Hello {
        version: u32,
        token: u128,
        exe: (u64, u64),
        probe: u64,
        initializer: Option<u64>,
        max_frame: u32,
        region_fd: i32,
        arena_fd: Option<i32>,
    },
    Ready {
        version: u32,
        token: u128,
        pid: u32,
    },
    Initialized,
    InitFailed {
        reason: String,
    },
    Task {
        call: u64,
        func: u64,
        count: u32,
        slot: u8,
    },
    Done {
        slot: u8,
        count: u32,
        failed: u32,
        elapsed_nanos: u64,
    },
    Partial {
        slot: u8,
        count: u32,
    },
    Skipped {
        slot: u8,
    },
    Descriptors {
        count: u32,
    },
    TaskShared {
        call: u64,
        func: u64,
        count: u32,
        slot: u8,
        at: u64,
        len: u64,
    },
    #[allow(dead_code)] // mirrors the crate's enum; this test never sends it
    PartialValues {
        slot: u8,
        count: u32,
        size: u32,
    },
    #[allow(dead_code)] // mirrors the crate's enum; this test never sends it
    Values {
        slot: u8,
        count: u32,
        size: u32,
        elapsed_nanos: u64,
    },
}

/// The tag of an argument that did not decode (`wire::outcome::BAD_ARGUMENT`).
const OUTCOME_BAD_ARGUMENT: u8 = 2;

/// One frame: length prefix, header, payload.
fn frame(message: &Message, payload: &[u8]) -> Vec<u8> {
    let header = postcard::to_allocvec(message).expect("encode a header");
    let len = u32::try_from(header.len() + payload.len()).expect("a small frame");
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    out
}

/// The token of the hand-made markers; anything will do.
const TOKEN: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;

/// The greeting that a worker started with [`TOKEN`] accepts.
fn hello() -> Message {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata(std::env::current_exe().expect("the test binary"))
        .expect("stat the test binary");
    Message::Hello {
        version: VERSION,
        token: TOKEN,
        exe: (exe.dev(), exe.ino()),
        probe: offsets().probe,
        initializer: None,
        max_frame: MAX_FRAME,
        region_fd: REGION_FD,
        arena_fd: None,
    }
}

/// The greeting, framed.
fn hello_frame() -> Vec<u8> {
    frame(&hello(), &[])
}

/// A task frame that runs `touch(path)`.
fn touch_frame(path: &str) -> Vec<u8> {
    let arg = postcard::to_allocvec(&path.to_owned()).expect("encode a path");
    touch_frame_with(&arg)
}

/// A task frame for `touch` with a payload of our choosing.
fn touch_frame_with(payload: &[u8]) -> Vec<u8> {
    let offsets = offsets();
    let task = Message::Task {
        call: offsets.trampoline,
        func: offsets.touch,
        count: 1,
        slot: 0,
    };
    frame(&task, payload)
}

/// Splits what a worker wrote to its result pipe into frames; stops at
/// bytes that are not a whole frame.
fn parse_frames(mut bytes: &[u8]) -> Vec<(Message, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let Some(body) = bytes.get(4..4 + len) else {
            panic!("a frame cut short in the worker's output: {bytes:?}");
        };
        let (message, payload) =
            postcard::take_from_bytes::<Message>(body).expect("a header the mirror decodes");
        frames.push((message, payload.to_vec()));
        bytes = &bytes[4 + len..];
    }
    assert!(bytes.is_empty(), "trailing bytes: {bytes:?}");
    frames
}

/// One outcome in a region's slot: a value's bytes, or a failure's tag
/// and detail.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Value(Vec<u8>),
    Failed(u8, Vec<u8>),
}

/// The first `count` outcomes of `slot` in the region.
fn read_outcomes(region: &OwnedFd, slot: usize, count: usize) -> Vec<Outcome> {
    let pread = |at: usize, len: usize| {
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` has room for `len` bytes; the descriptor is open.
        let got = unsafe {
            libc::pread(
                region.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                len,
                at as libc::off_t,
            )
        };
        assert_eq!(got, len as isize, "read the region");
        buf
    };
    let ends = pread(REGION_HEADER + slot * REGION_ENDS, count * 4);
    let data_at = REGION_HEADER + 2 * REGION_ENDS + slot * REGION_DATA;
    let mut start = 0;
    (0..count)
        .map(|i| {
            let raw = u32::from_le_bytes(ends[i * 4..i * 4 + 4].try_into().unwrap());
            let end = (raw & !FAILED) as usize;
            let bytes = pread(data_at + start, end - start);
            start = end;
            if raw & FAILED == 0 {
                Outcome::Value(bytes)
            } else {
                Outcome::Failed(bytes[0], bytes[1..].to_vec())
            }
        })
        .collect()
}

/// A fresh region as the crate makes one: a sealed memfd of the layout's
/// size.
fn region() -> OwnedFd {
    // SAFETY: a literal name and valid flags; the calls after it act on the
    // new descriptor only.
    unsafe {
        let fd = libc::memfd_create(
            c"bad-input".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        );
        assert!(fd >= 0, "memfd_create");
        assert_eq!(libc::ftruncate(fd, REGION_LEN as libc::off_t), 0);
        assert_eq!(
            libc::fcntl(
                fd,
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW
            ),
            0
        );
        OwnedFd::from_raw_fd(fd)
    }
}

// ---------------------------------------------------- the symbol table

/// Where the functions a hand-made frame names lie, relative to the
/// crate's anchor function (what the crate calls an offset).
#[derive(Debug)]
struct Offsets {
    probe: u64,
    trampoline: u64,
    touch: u64,
}

/// The offsets, read once from this binary's symbol table.
fn offsets() -> &'static Offsets {
    static OFFSETS: OnceLock<Offsets> = OnceLock::new();
    OFFSETS.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary");
        let symbols = function_symbols(&std::fs::read(&exe).expect("read the test binary"));
        // The one address of the functions whose mangled name holds `path`
        // (legacy and v0 mangling both spell the path this way), followed
        // by nothing, legacy mangling's hash (`17h` and 16 hex digits), or
        // anything but the length of a further segment (as a closure's).
        let find = |path: &str| -> u64 {
            let names = |name: &String| {
                name.match_indices(path).any(|(at, _)| {
                    let rest = &name[at + path.len()..];
                    let hash = rest.strip_prefix("17h").is_some_and(|hash| {
                        hash.len() == 17
                            && hash.ends_with('E')
                            && hash[..16].bytes().all(|b| b.is_ascii_hexdigit())
                    });
                    hash || !rest.bytes().next().is_some_and(|b| b.is_ascii_digit())
                })
            };
            let mut values: Vec<u64> = symbols
                .iter()
                .filter(|(name, _)| names(name))
                .map(|&(_, value)| value)
                .collect();
            values.sort_unstable();
            values.dedup();
            match values[..] {
                [value] => value,
                [] => panic!("no symbol {path} in {exe:?}: is the test binary stripped?"),
                _ => panic!(
                    "{} functions match {path}; every task in this file must be an \
                     `fn(String) -> bool`, so that the trampoline has one instance",
                    values.len()
                ),
            }
        };
        let anchor = find("18concurrent_futures12process_pool3sys6anchor");
        let offset = |value: u64| value.wrapping_sub(anchor);
        Offsets {
            probe: offset(find("18concurrent_futures12process_pool3sys5probe")),
            trampoline: offset(find("18concurrent_futures12process_pool5entry10trampoline")),
            touch: offset(find("9bad_input5touch")),
        }
    })
}

/// The function symbols of a 64-bit little-endian ELF file: mangled name
/// and value (its address relative to the load base).
fn function_symbols(elf: &[u8]) -> Vec<(String, u64)> {
    assert!(
        elf.starts_with(b"\x7fELF") && elf[4] == 2 && elf[5] == 1,
        "not a 64-bit little-endian ELF file"
    );
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    const SHT_SYMTAB: usize = 2;
    const STT_FUNC: u8 = 2;
    let (shoff, shentsize, shnum) = (u64_at(0x28) as usize, u16_at(0x3a), u16_at(0x3c));
    let section = |index: usize| shoff + index * shentsize;
    let mut symbols = Vec::new();
    for index in 0..shnum {
        let header = section(index);
        if u32_at(header + 4) != SHT_SYMTAB {
            continue;
        }
        let (offset, size) = (u64_at(header + 24) as usize, u64_at(header + 32) as usize);
        let strings = u64_at(section(u32_at(header + 40)) + 24) as usize;
        for symbol in (offset..offset + size).step_by(24) {
            if elf[symbol + 4] & 0xf != STT_FUNC {
                continue;
            }
            let name = &elf[strings + u32_at(symbol)..];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            symbols.push((
                String::from_utf8_lossy(name).into_owned(),
                u64_at(symbol + 8),
            ));
        }
    }
    symbols
}

// ------------------------------------------------- a would-be worker

/// A close-on-exec pipe: `(read, write)`.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: `pipe2` succeeded: two new descriptors nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// What a would-be worker did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Everything it wrote on its result pipe.
    results: Vec<u8>,
    /// Its shared region.
    region: OwnedFd,
    /// Whether it reached the test harness's `main`.
    main_ran: bool,
}

/// Starts this binary as a worker with [`TOKEN`] in its marker and real
/// pipes, `input` waiting on its task pipe (then end of file), and runs it
/// to its end.
fn run_worker(dir: &TempDir, input: &[u8]) -> Run {
    assert!(
        input.len() < 60_000,
        "the input must fit in a pipe's buffer"
    );
    let (task_read, task_write) = pipe();
    let (result_read, result_write) = pipe();
    std::fs::File::from(task_write)
        .write_all(input)
        .expect("write the input");
    let keep = [task_read.as_raw_fd(), result_write.as_raw_fd()];
    let region = region();
    let main_ran = dir.file("main-ran");
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", "main_ran", "--ignored", "--nocapture"])
        .env(
            "CONCURRENT_FUTURES_WORKER",
            format!("v1:{}:{}:{TOKEN:032x}", keep[0], keep[1]),
        )
        .env(MAIN_RAN, &main_ran)
        .stdin(Stdio::null());
    keep_open(&mut command, keep, region.as_raw_fd());
    let output = command.output().expect("run the binary");
    drop((task_read, result_write));
    let mut results = Vec::new();
    std::fs::File::from(result_read)
        .read_to_end(&mut results)
        .expect("read the result pipe");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        results,
        region,
        main_ran: Path::new(&main_ran).exists(),
    }
}

/// Makes the child keep `keep` open across `exec`, and `region` at
/// [`REGION_FD`].
fn keep_open(command: &mut Command, keep: [RawFd; 2], region: RawFd) {
    // SAFETY: runs between fork and exec, where only async-signal-safe
    // calls are allowed: `fcntl` and `dup2` are, and nothing allocates.
    unsafe {
        command.pre_exec(move || {
            for fd in keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::dup2(region, REGION_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How a bad input ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// A well-formed task that would create a file follows the bad bytes.
    Task,
    /// End of file follows: the bad bytes are a frame cut short, which
    /// anything after them would complete.
    End,
}

/// Feeds a would-be worker `bad` bytes (after a good greeting if `greeted`)
/// and checks that it refused with `why` and ran nothing. A greeted worker
/// answers the greeting with `Ready`, and nothing else.
fn assert_refused(dir: &TempDir, case: &str, greeted: bool, bad: &[u8], then: Then, why: &str) {
    let touched = dir.file(&format!("touched-{case}"));
    let mut input = Vec::new();
    if greeted {
        input.extend(hello_frame());
    }
    input.extend_from_slice(bad);
    if then == Then::Task {
        input.extend(touch_frame(&touched));
    }
    let run = run_worker(dir, &input);
    assert_eq!(run.code, Some(BAD_START), "{case}: {run:?}");
    assert!(
        run.stderr.contains("concurrent-futures") && run.stderr.contains(why),
        "{case}: the message does not say {why:?}: {}",
        run.stderr
    );
    assert!(
        !run.main_ran && run.stdout.is_empty(),
        "{case}: main ran: {run:?}"
    );
    assert!(!Path::new(&touched).exists(), "{case}: the task ran");
    let frames = parse_frames(&run.results);
    if greeted {
        assert!(
            matches!(
                frames[..],
                [(
                    Message::Ready {
                        version: VERSION,
                        token: TOKEN,
                        ..
                    },
                    _
                )]
            ),
            "{case}: {frames:?}"
        );
    } else {
        assert!(frames.is_empty(), "{case}: it answered {frames:?}");
    }
}

// ---------------------------------------------------- parent → worker

#[test]
fn a_hand_made_greeting_and_task_run_the_task() {
    // The control for every refusal below: the same bytes without the bad
    // frame make the worker run the task and answer it.
    let dir = TempDir::new("bad-input", "control");
    let touched = dir.file("touched");
    let mut input = hello_frame();
    input.extend(touch_frame(&touched));
    let run = run_worker(&dir, &input);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(Path::new(&touched).exists(), "the task did not run");
    assert!(!run.main_ran && run.stdout.is_empty(), "{run:?}");
    let frames = parse_frames(&run.results);
    let [(Message::Ready { token, .. }, _), (
        Message::Done {
            slot: 0,
            count: 1,
            failed: 0,
            ..
        },
        _,
    )] = &frames[..]
    else {
        panic!("unexpected answer {frames:?}");
    };
    assert_eq!(*token, TOKEN);
    let ok_true = Outcome::Value(postcard::to_allocvec(&true).unwrap());
    assert_eq!(read_outcomes(&run.region, 0, 1), [ok_true]);
}

#[test]
fn a_bad_greeting_is_refused_and_nothing_runs() {
    use Then::{End, Task};
    let dir = TempDir::new("bad-input", "greeting");
    let good = hello_frame();
    let with = |change: fn(&mut Message)| {
        let mut hello = hello();
        change(&mut hello);
        frame(&hello, &[])
    };
    let garbage = b"\x0b\x00\x00\x00GARBAGE!!!!".to_vec();
    let noise: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(149) | 0x80).collect();
    let cases: Vec<(&str, Vec<u8>, Then, &str)> = vec![
        (
            "nothing",
            Vec::new(),
            End,
            "could not be read: the pipe was closed",
        ),
        ("garbage", garbage, Task, "not a valid message"),
        ("noise", noise, Task, "greeting could not be read"),
        (
            "prefix-cut-short",
            vec![9, 0],
            End,
            "cut short after 2 of 4",
        ),
        (
            "frame-cut-short",
            good[..good.len() / 2].to_vec(),
            End,
            "cut short",
        ),
        (
            "huge-length",
            u32::MAX.to_le_bytes().to_vec(),
            Task,
            "over the limit of 4096",
        ),
        (
            "just-over-the-limit",
            (HELLO_LIMIT + 1).to_le_bytes().to_vec(),
            Task,
            "over the limit of 4096",
        ),
        (
            "wrong-version",
            with(|h| {
                if let Message::Hello { version, .. } = h {
                    *version = VERSION + 1;
                }
            }),
            Task,
            "protocol version 4",
        ),
        (
            "wrong-token",
            with(|h| {
                if let Message::Hello { token, .. } = h {
                    *token ^= 1;
                }
            }),
            Task,
            "token does not match",
        ),
        (
            "wrong-executable",
            with(|h| {
                if let Message::Hello { exe, .. } = h {
                    exe.1 ^= 1;
                }
            }),
            Task,
            "different executable",
        ),
        (
            "wrong-build",
            with(|h| {
                if let Message::Hello { probe, .. } = h {
                    *probe = probe.wrapping_add(16);
                }
            }),
            Task,
            "other offsets",
        ),
        (
            "a-task-first",
            touch_frame(&dir.file("touched-first")),
            Task,
            "not a greeting",
        ),
        (
            "an-answer-first",
            frame(&Message::Initialized, &[]),
            Task,
            "not a greeting",
        ),
    ];
    for (case, bad, then, why) in cases {
        assert_refused(&dir, case, false, &bad, then, why);
    }
    assert!(!Path::new(&dir.file("touched-first")).exists());
}

#[test]
fn a_bad_frame_after_the_greeting_stops_the_worker_before_anything_runs() {
    use Then::{End, Task};
    let dir = TempDir::new("bad-input", "after-greeting");
    let garbage = b"\x0b\x00\x00\x00GARBAGE!!!!".to_vec();
    // `Initialized` is variant 2; 0x7f is no variant at all.
    let unknown_variant = vec![1, 0, 0, 0, 0x7f];
    let task = touch_frame(&dir.file("touched-cut"));
    let done = Message::Done {
        slot: 0,
        count: 1,
        failed: 0,
        elapsed_nanos: 0,
    };
    let cases: Vec<(&str, Vec<u8>, Then, &str)> = vec![
        (
            "garbage",
            garbage,
            Task,
            "bad frame: the frame's header is not a valid message",
        ),
        (
            "unknown-variant",
            unknown_variant,
            Task,
            "not a valid message",
        ),
        (
            "huge-length",
            u32::MAX.to_le_bytes().to_vec(),
            Task,
            "bad frame: a frame of 4294967295 bytes is over the limit of 1048576",
        ),
        (
            "just-over-the-limit",
            (MAX_FRAME + 1).to_le_bytes().to_vec(),
            Task,
            "over the limit of 1048576",
        ),
        (
            "prefix-cut-short",
            vec![9, 0, 0],
            End,
            "bad frame: the frame was cut short",
        ),
        (
            "task-cut-short",
            task[..task.len() - 3].to_vec(),
            End,
            "cut short",
        ),
        (
            "a-second-greeting",
            hello_frame(),
            Task,
            "unexpected message",
        ),
        ("an-answer", frame(&done, &[]), Task, "unexpected message"),
        // Arguments said to lie in an argument arena this worker was not
        // given (the greeting names none): refused, nothing read or run.
        (
            "arguments-in-no-arena",
            frame(
                &Message::TaskShared {
                    call: 1,
                    func: 2,
                    count: 1,
                    slot: 0,
                    at: 0,
                    len: 8,
                },
                &[],
            ),
            Task,
            "its parent named arguments at 0+8, outside its arena",
        ),
    ];
    for (case, bad, then, why) in cases {
        assert_refused(&dir, case, true, &bad, then, why);
    }
    assert!(!Path::new(&dir.file("touched-cut")).exists());
}

#[test]
fn an_undecodable_item_fails_alone_and_the_worker_goes_on() {
    let dir = TempDir::new("bad-input", "items");
    let path = |name: &str| dir.file(name);
    // A path is a postcard string: a varint length and UTF-8 bytes.
    let string = |s: &str| postcard::to_allocvec(&s.to_owned()).unwrap();
    let cut_item = {
        // The string's length promises more than the payload holds.
        let mut item = string(&path("touched-cut-item"));
        item.truncate(item.len() - 2);
        item
    };
    let not_utf8 = {
        let mut bytes = string(&path("touched-bad-utf8"));
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        bytes
    };
    let short_string = vec![200]; // a length of 200, no bytes
    let mut input = hello_frame();
    for payload in [&cut_item, &not_utf8, &short_string] {
        input.extend(touch_frame_with(payload));
    }
    input.extend(touch_frame(&path("touched-after")));
    let run = run_worker(&dir, &input);
    assert_eq!(run.code, Some(0), "{run:?}");
    let frames = parse_frames(&run.results);
    assert_eq!(frames.len(), 5, "Ready and four answers: {frames:?}");
    for (message, _) in &frames[1..4] {
        assert!(
            matches!(
                message,
                Message::Done {
                    count: 1,
                    failed: 1,
                    ..
                }
            ),
            "{message:?}"
        );
    }
    for never in ["touched-cut-item", "touched-bad-utf8"] {
        assert!(!Path::new(&path(never)).exists(), "{never} ran");
    }
    // The worker went on: the good task after the bad ones ran.
    assert!(
        matches!(
            frames[4].0,
            Message::Done {
                count: 1,
                failed: 0,
                ..
            }
        ),
        "{:?}",
        frames[4]
    );
    let ok_true = Outcome::Value(postcard::to_allocvec(&true).unwrap());
    assert_eq!(read_outcomes(&run.region, 0, 1), [ok_true]);
    assert!(Path::new(&path("touched-after")).exists());
}

/// The last bad item's outcome, kept in the region until the next task:
/// its tag says why.
#[test]
fn an_undecodable_item_says_so_in_the_region() {
    let dir = TempDir::new("bad-input", "item-tag");
    let mut input = hello_frame();
    input.extend(touch_frame_with(&[200]));
    let run = run_worker(&dir, &input);
    assert_eq!(run.code, Some(0), "{run:?}");
    match &read_outcomes(&run.region, 0, 1)[..] {
        [Outcome::Failed(OUTCOME_BAD_ARGUMENT, reason)] => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------- worker → parent

/// Writes `mode`'s bytes into this worker's result pipe (found by
/// `common::result_pipe`), as a task that
/// corrupts the protocol would; an empty `mode` does nothing. Either way
/// the task then returns `true`.
fn corrupt(mode: String) -> bool {
    let bytes: Vec<u8> = match mode.as_str() {
        "" => return true,
        "huge-length" => u32::MAX.to_le_bytes().to_vec(),
        "garbage" => b"\x0b\x00\x00\x00GARBAGE!!!!".to_vec(),
        // A well-formed frame the parent does not expect here.
        "unexpected" => frame(&Message::Initialized, &[]),
        // A frame cut short, then the worker ends.
        "cut-short" => vec![100, 0, 0, 0, 1, 2, 3],
        other => panic!("unknown mode {other}"),
    };
    // SAFETY: `result_pipe` found an open descriptor; the file is forgotten
    // below, so it is not closed here.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(common::result_pipe()) };
    pipe.write_all(&bytes).expect("write into the result pipe");
    std::mem::forget(pipe);
    if mode == "cut-short" {
        std::process::exit(0);
    }
    true
}

#[test]
fn a_task_that_corrupts_its_result_pipe_fails_alone() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let dir = TempDir::new("bad-input", "corrupt");
    // The control, and the one task that is not `corrupt`.
    assert_eq!(pool.submit(touch, dir.file("control")).result(), Ok(true));
    let mut pid = pool.worker_pids()[0];
    for (mode, why) in [
        ("huge-length", "over the limit"),
        ("garbage", "not a valid message"),
        ("unexpected", "Initialized"),
    ] {
        match pool.submit(corrupt, mode.to_owned()).result() {
            Err(Error::Protocol {
                pid: culprit,
                reason,
            }) => {
                assert_eq!(culprit, pid, "{mode}");
                assert!(reason.contains(why), "{mode}: {reason}");
            }
            // The task finished (its outcome is safe in the shared region)
            // before the parent read the bytes it forged: it is delivered,
            // and its worker replaced all the same.
            Ok(true) => {}
            other => panic!("{mode}: {other:?}"),
        }
        // The pool goes on, on a fresh worker.
        assert_eq!(pool.submit(corrupt, String::new()).result(), Ok(true));
        let now = pool.worker_pids()[0];
        assert_ne!(now, pid, "{mode}: the culprit was not replaced");
        assert!(!common::is_our_child(pid), "{mode}: not reaped");
        pid = now;
    }
    // A frame cut short by the worker's end is its death.
    let outcome = pool.submit(corrupt, "cut-short".to_owned()).result();
    let died = Error::WorkerDied {
        pid,
        exit_code: Some(0),
        signal: None,
    };
    assert_eq!(outcome, Err(died));
    // In a map, only the corrupting item fails.
    let modes = ["", "", "garbage", "", ""].map(String::from);
    let results: Vec<_> = pool
        .map(corrupt, modes)
        .chunksize(Chunksize::Fixed(1.try_into().unwrap()))
        .collect();
    for (index, result) in results.iter().enumerate() {
        if index == 2 {
            assert!(
                matches!(result, Err(Error::Protocol { .. }) | Ok(true)),
                "{result:?}"
            );
        } else {
            assert_eq!(result, &Ok(true), "item {index}");
        }
    }
}
