//! How a re-executed binary becomes a worker, and the worker's loop.
//!
//! The parent starts its own executable with [`MARKER`] in the environment:
//! `v1:<task fd>:<result fd>:<token>`. [`run_if_worker`] (called by
//! [`init`](crate::init), and on Linux also by a constructor that runs
//! before `main`) sees the marker, removes it from the environment (so that
//! the task's own child processes are not mistaken for workers), checks the
//! parent's `Hello`, and serves tasks until the parent closes the pipe. It
//! never returns: the process exits, and nothing of the user's `main` runs.
//!
//! A process started with a marker that does not check out (descriptors
//! that are not open, a wrong token, protocol version or executable) prints
//! why on its standard error and exits with status [`BAD_START`], having
//! executed nothing.

use std::fs::File;
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::outcomes::{send_or_exit, Outcomes, Sink};
use super::sys::{self, arena::ArenaMap, region::Region};
use super::wire::{self, gate, outcome, Message, PanicInfo, WireError};

/// The environment variable that makes a process a worker.
pub(crate) const MARKER: &str = "CONCURRENT_FUTURES_WORKER";

/// The environment variable that names the worker's end of its Unix
/// socket, on which the descriptors of multiprocessing handles arrive.
pub(crate) const SOCKET_MARKER: &str = "CONCURRENT_FUTURES_WORKER_SOCKET";

/// The exit status of a worker that refused to start.
pub(crate) const BAD_START: i32 = 86;

/// The largest frame a worker reads before the parent has said its limit.
const HELLO_LIMIT: u32 = 4096;

/// If this process was started as a worker, serves as one and exits.
pub(crate) fn run_if_worker() {
    let Some(value) = std::env::var_os(MARKER) else {
        return;
    };
    // Remove the marker before anything else can read it or spawn a child.
    // This runs before `main` or as its first line, while the process has
    // one thread, so changing the environment races with nothing.
    std::env::remove_var(MARKER);
    let socket = std::env::var(SOCKET_MARKER).ok();
    std::env::remove_var(SOCKET_MARKER);
    let pid = std::process::id();
    let value = value.to_string_lossy().into_owned();
    // Before the task thread exists, so that it allocates from the arena
    // this tunes (see `keep_freed_memory`).
    sys::keep_freed_memory();
    // Tasks run on a thread of their own, named after the worker, so that a
    // panic says where it happened ("thread 'ProcessPoolExecutor-worker-…'
    // panicked") and a stack overflow can be told apart. Its stack is as
    // large as the main thread's may grow (RLIMIT_STACK).
    let serving = std::thread::Builder::new()
        .name(format!("ProcessPoolExecutor-worker-{pid}"))
        .stack_size(sys::main_stack_size())
        .spawn(move || serve(&value, socket.as_deref()));
    let outcome = match serving {
        Ok(thread) => thread
            .join()
            .unwrap_or_else(|_| Err(String::from("its serving thread panicked"))),
        Err(e) => Err(format!("cannot start its serving thread: {e}")),
    };
    let status = match outcome {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("concurrent-futures: process {pid} was started as a worker but {reason}; it exits without running anything");
            BAD_START
        }
    };
    std::process::exit(status);
}

/// The parsed marker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) task_fd: i32,
    pub(crate) result_fd: i32,
    pub(crate) token: u128,
}

pub(crate) fn parse_marker(value: &str) -> Result<Marker, String> {
    let bad = || format!("its {MARKER} value {value:?} is not of the form v1:<fd>:<fd>:<token>");
    let mut parts = value.split(':');
    if parts.next() != Some("v1") {
        return Err(bad());
    }
    let task_fd = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let result_fd = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let token = parts
        .next()
        .and_then(|s| u128::from_str_radix(s, 16).ok())
        .ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Marker {
        task_fd,
        result_fd,
        token,
    })
}

/// The device and inode of the running executable.
pub(crate) fn exe_identity() -> Result<(u64, u64), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self/exe")
        .map_err(|e| format!("cannot stat its own executable: {e}"))?;
    Ok((meta.dev(), meta.ino()))
}

/// What the parent's greeting told a worker that accepted it.
#[derive(Debug)]
pub(crate) struct Greeting {
    /// The initializer to run before the first task (its offset), if any.
    pub(crate) initializer: Option<u64>,
    /// The largest frame either side may send.
    pub(crate) max_frame: u32,
    /// The descriptor of the shared region.
    pub(crate) region_fd: i32,
    /// The descriptor of the pool's argument arena, if it has one.
    pub(crate) arena_fd: Option<i32>,
}

/// The worker's side of the handshake: reads the parent's `Hello` from
/// `tasks`, checks it against this worker (the marker's `token`, the
/// executable `own_exe` returns, the probe's offset `probe`), and answers
/// `Ready` on `results`. Nothing is written unless the greeting checks out.
pub(crate) fn greet(
    tasks: &mut impl Read,
    results: &mut impl wire::FrameSink,
    scratch: &mut Vec<u8>,
    token: u128,
    own_exe: impl FnOnce() -> Result<(u64, u64), String>,
    probe: u64,
) -> Result<Greeting, String> {
    let hello = wire::read_frame(tasks, HELLO_LIMIT)
        .map_err(|e| format!("its parent's greeting could not be read: {e}"))?;
    let Message::Hello {
        version,
        token: sent_token,
        exe,
        probe: sent_probe,
        initializer,
        max_frame,
        region_fd,
        arena_fd,
    } = hello.message
    else {
        return Err(format!(
            "the first message was not a greeting: {:?}",
            hello.message
        ));
    };
    if version != wire::VERSION {
        return Err(format!(
            "the parent speaks protocol version {version}, this worker {}",
            wire::VERSION
        ));
    }
    if sent_token != token {
        return Err(String::from(
            "the parent's token does not match the marker's",
        ));
    }
    if exe != own_exe()? {
        return Err(String::from("the parent runs a different executable"));
    }
    if sent_probe != probe {
        return Err(String::from(
            "the parent's functions lie at other offsets (a different build)",
        ));
    }
    let ready = Message::Ready {
        version: wire::VERSION,
        token,
        pid: std::process::id(),
    };
    wire::write_frame(results, &ready, &[], max_frame, scratch)
        .map_err(|e| format!("could not answer its parent: {e}"))?;
    Ok(Greeting {
        initializer,
        max_frame,
        region_fd,
        arena_fd,
    })
}

fn serve(value: &str, socket: Option<&str>) -> Result<(), String> {
    let marker = parse_marker(value)?;
    // Without its socket (a parent of an older build, a hand-made start) a
    // worker still serves every task whose arguments hold no handle.
    let socket: Option<std::os::fd::OwnedFd> = socket
        .and_then(|fd| fd.parse().ok())
        .and_then(sys::inherited_fd);
    sys::die_with_parent().map_err(|e| format!("cannot ask to die with its parent: {e}"))?;
    let tasks = sys::inherited_file(marker.task_fd)
        .ok_or_else(|| format!("descriptor {} is not open", marker.task_fd))?;
    let mut results = sys::inherited_file(marker.result_fd)
        .ok_or_else(|| format!("descriptor {} is not open", marker.result_fd))?;
    let mut tasks = BufReader::with_capacity(64 * 1024, tasks);

    let mut scratch = Vec::new();
    let probe = sys::offset_of(sys::probe as fn() as usize);
    let Greeting {
        initializer,
        max_frame,
        region_fd,
        arena_fd,
    } = greet(
        &mut tasks,
        &mut results,
        &mut scratch,
        marker.token,
        exe_identity,
        probe,
    )?;

    let region = sys::inherited_fd(region_fd)
        .ok_or_else(|| format!("the shared region's descriptor {region_fd} is not open"))?;
    let mut region =
        Region::adopt(region).map_err(|e| format!("cannot map its shared region: {e}"))?;
    // The region outlives every task; the report stops before it goes.
    struct StopReporting;
    impl Drop for StopReporting {
        fn drop(&mut self) {
            sys::overflow::stop_reporting();
        }
    }
    sys::overflow::report_overflows(region.death());
    let _stop = StopReporting;
    // Read-only: the parent gathers chunks of plain numbers there.
    let arena = match arena_fd {
        Some(fd) => {
            let fd = sys::inherited_fd(fd)
                .ok_or_else(|| format!("the argument arena's descriptor {fd} is not open"))?;
            Some(ArenaMap::adopt(fd).map_err(|e| format!("cannot map the argument arena: {e}"))?)
        }
        None => None,
    };

    crate::unwind::install_hook();
    let pid = std::process::id();
    WORKER_PID.store(pid, Ordering::Relaxed);
    let send = |results: &mut File, message: &Message, payload: &[u8], scratch: &mut Vec<u8>| {
        wire::write_frame(results, message, payload, max_frame, scratch)
            .map_err(|e| format!("could not answer its parent: {e}"))
    };

    if let Some(offset) = initializer {
        // SAFETY: the parent sent the offset of an `fn() -> Result<(), String>`
        // (the builder only takes that type) in this same executable.
        let init = unsafe { sys::initializer_at(sys::address_at(offset)) };
        let outcome = crate::unwind::catch(init, Some(pid)).unwrap_or_else(|e| Err(e.to_string()));
        let reply = match outcome {
            Ok(()) => Message::Initialized,
            Err(reason) => Message::InitFailed { reason },
        };
        send(&mut results, &reply, &[], &mut scratch)?;
        if matches!(reply, Message::InitFailed { .. }) {
            return Ok(());
        }
    }

    // The payload buffer lives as long as the worker, so that a run of
    // large tasks does not map and fault in fresh memory for every one.
    let mut payload = Vec::new();
    let mut spill = Vec::new();
    // The descriptors for the next task's multiprocessing handles.
    let mut descriptors = Vec::new();
    let waits = sys::RunQueueWait::of_this_thread();
    loop {
        let message = match wire::read_frame_into(&mut tasks, max_frame, &mut payload) {
            Ok(message) => message,
            // The parent closed the pipe: shut down, or it died.
            Err(WireError::Closed) => return Ok(()),
            Err(e) => return Err(format!("its parent sent a bad frame: {e}")),
        };
        let (call, func, count, slot, shared) = match message {
            Message::Task {
                call,
                func,
                count,
                slot,
            } => (call, func, count, slot, None),
            Message::TaskShared {
                call,
                func,
                count,
                slot,
                at,
                len,
            } => (call, func, count, slot, Some((at, len))),
            Message::Descriptors { count } => {
                descriptors = receive_descriptors(socket.as_ref(), count)?;
                continue;
            }
            message => {
                return Err(format!(
                    "its parent sent an unexpected message: {message:?}"
                ))
            }
        };
        // The arguments: the frame's payload, or where the parent said
        // they lie in the arena (which it leaves alone until the `Done`).
        let arguments: &[u8] = match shared {
            None => &payload,
            Some((at, len)) => arena
                .as_ref()
                .and_then(|arena| arena.bytes(at, len))
                .ok_or_else(|| {
                    format!("its parent named arguments at {at}+{len}, outside its arena")
                })?,
        };
        let slot = usize::from(slot);
        if slot >= sys::region::SLOTS {
            return Err(format!(
                "its parent named slot {slot} of {}",
                sys::region::SLOTS
            ));
        }
        if !claim(region.gate(slot)) {
            let skipped = Message::Skipped { slot: slot as u8 };
            send_or_exit(&mut results, &skipped, &[], max_frame, &mut scratch);
            continue;
        }
        let start = Instant::now();
        // A chunk's time, which sizes the next ones, leaves out the time
        // this worker waited for a CPU (see `sys::RunQueueWait`); a lone
        // call's is not used for that, and skips the two reads.
        let waited_before = if count > 1 { waits.total() } else { None };
        let mut outcomes = Outcomes::new(
            &mut region,
            slot,
            Sink::Pipe(&mut results),
            max_frame,
            &mut scratch,
            &mut spill,
        );
        // SAFETY: `call` is the offset of a `trampoline::<A, R>` the parent
        // took the address of, in this same executable (checked above).
        let trampoline = unsafe { sys::trampoline_at(sys::address_at(call)) };
        let mut run = || trampoline(sys::address_at(func), arguments, count, &mut outcomes);
        if descriptors.is_empty() {
            run();
        } else {
            // The handles in the arguments take their descriptors from
            // here; those left over are closed when the task is done.
            let fds = std::mem::take(&mut descriptors);
            crate::multiprocessing::transfer::with_received(fds, run);
        }
        // `spill` serves the next task too: none of it may still be lent.
        outcomes.reclaim_spill();
        let waited = match (waited_before, waited_before.and_then(|_| waits.total())) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => Duration::ZERO,
        };
        let elapsed = start.elapsed().saturating_sub(waited);
        let done = Message::Done {
            slot: slot as u8,
            count: outcomes.done_counts().0,
            failed: outcomes.done_counts().1,
            elapsed_nanos: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        };
        // Before the Done: once the parent has the Done it may hand the slot
        // to a new task, whose gate this must not overwrite. ORDERING:
        // Release, a status for a parent that finds this worker dead before
        // the Done arrives.
        region.gate(slot).store(gate::FINISHED, Ordering::Release);
        send_or_exit(&mut results, &done, &[], max_frame, &mut scratch);
    }
}

/// Why argument `index` of `payload` did not decode, in the words of its
/// own `Deserialize` where it has some (found by decoding it again).
#[cold]
fn undecodable_argument<A: DeserializeOwned>(
    error: &postcard::Error,
    payload: &[u8],
    index: usize,
) -> String {
    let mut de = wire::Deserializer::new(payload);
    let before = crate::unwind::catch(|| (0..index).all(|_| A::deserialize(&mut de).is_ok()), None);
    match before {
        Ok(true) => {
            let mut rest = wire::Deserializer::new(de.rest());
            crate::serde_message::decode_reason::<A, _>(error, &mut rest, wire::why)
        }
        _ => wire::why(error),
    }
}

/// Receives the `count` descriptors that the parent sends on the worker's
/// socket before a task whose arguments hold multiprocessing handles.
fn receive_descriptors(
    socket: Option<&std::os::fd::OwnedFd>,
    count: u32,
) -> Result<Vec<std::os::fd::OwnedFd>, String> {
    let socket = socket.ok_or("its parent sent descriptors, but it has no socket for them")?;
    let mut fds = Vec::with_capacity(count as usize);
    let mut byte = [0u8; 8];
    while fds.len() < count as usize {
        match sys::recv_with_fds(socket, &mut byte, &mut fds) {
            Ok(0) => return Err(String::from("its socket closed while descriptors were due")),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot receive descriptors: {e}")),
        }
    }
    Ok(fds)
}

/// Claims the task of a slot: `false` if the parent withdrew it.
fn claim(gate_word: &AtomicU32) -> bool {
    let mut seen = gate::QUEUED;
    loop {
        // ORDERING: AcqRel/Acquire: the swap decides, against the parent's
        // withdrawal, whether the task runs; Acquire makes the parent's
        // reset of the progress word visible before this worker writes it.
        match gate_word.compare_exchange(seen, gate::STARTED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(gate::WITHDRAWN) => return false,
            Err(now @ (gate::EMPTY | gate::FINISHED | gate::QUEUED)) => seen = now,
            // STARTED (the parent sent a slot in use), or garbage: run it,
            // as a parent that hands nothing out would want.
            Err(_) => return true,
        }
    }
}

/// This worker's pid, set once before it runs any task (`getpid` is a
/// system call each time, which a no-op task would notice).
static WORKER_PID: AtomicU32 = AtomicU32::new(0);

/// This worker's pid (its panics say which process they came from).
fn worker_pid() -> u32 {
    // ORDERING: set before the first task, on the thread that runs tasks.
    match WORKER_PID.load(Ordering::Relaxed) {
        0 => std::process::id(),
        pid => pid,
    }
}

/// Runs the user's `fn(A) -> R` (at address `func`) on each of the `count`
/// arguments of a task payload and records one outcome per item in
/// `outcomes`. Monomorphised in the parent, whose address travels as the
/// task's `call`.
// `index`, `decoded` and `consumed` are read after a panic unwinds out of
// the loop that writes them, which the lint does not see.
#[allow(unused_assignments)]
pub(crate) fn trampoline<A, R>(func: usize, payload: &[u8], count: u32, outcomes: &mut Outcomes<'_>)
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    // SAFETY: the parent sends `func` only next to `trampoline::<A, R>`, as
    // the address of the `fn(A) -> R` it was given.
    let f = unsafe { sys::function_at::<A, R>(func) };
    let pid = Some(worker_pid());
    let count = count as usize;
    // The item being run, whether its argument has been decoded, and the
    // payload's bytes decoded so far: written as the loop goes (never read
    // by it, so that its own copies stay in registers), for the loop to go
    // on from after a panic.
    let mut index = 0;
    let mut decoded = false;
    let mut consumed = 0;
    // Plain numbers in and out take a loop without serde (`run_plain`);
    // the size of an argument, if they do.
    let plain = match wire::bulk::plain_size::<R>() {
        Some(_) => wire::bulk::plain_payload::<A>(payload, count),
        None => None,
    };
    // The user's code (the function, and the argument's and result's serde
    // impls) may panic; each item's panic is its own. The loop runs under
    // one `catch_unwind`, entered again after a panic, so a task that does
    // not panic pays for one catch, not one per item.
    while index < count {
        let ran = crate::unwind::catch(
            || {
                let mut arguments =
                    wire::Deserializer::new(&payload[consumed.min(payload.len())..]);
                let mut item = index;
                let mut quick = outcomes.quick();
                if item < count {
                    quick.begin(item);
                }
                while item < count {
                    if let Some(size) = plain {
                        // SAFETY: `plain` is `Some` only when
                        // `plain_payload::<A>(payload, count)` was.
                        item = unsafe { quick.run_plain(f, payload, item, count) };
                        if item == count {
                            break;
                        }
                        // The slot is full: this item goes the common way,
                        // which hands the slot over.
                        arguments = wire::Deserializer::new(&payload[item * size..]);
                    }
                    index = item;
                    decoded = false;
                    let arg = match A::deserialize(&mut arguments) {
                        Ok(arg) => arg,
                        Err(e) => {
                            // Where the next argument starts is unknown:
                            // the task stops here, and the parent sends
                            // the rest again.
                            drop(quick);
                            let reason = undecodable_argument::<A>(&e, payload, item);
                            outcomes.failure(outcome::BAD_ARGUMENT, reason.as_bytes());
                            outcomes.end(item);
                            index = count;
                            return;
                        }
                    };
                    consumed = payload.len() - arguments.rest().len();
                    decoded = true;
                    let result = f(arg);
                    if !quick.value(&result) {
                        drop(quick);
                        outcomes.value(&result);
                        quick = outcomes.quick();
                    }
                    // One store publishes this outcome and starts the
                    // next item: 2k + 3 says item k is finished as 2k + 2
                    // would (see `wire`); the last item ends with 2k + 2.
                    item += 1;
                    if item < count {
                        quick.begin(item);
                    } else {
                        quick.end(item - 1);
                    }
                }
                index = item;
            },
            pid,
        );
        match ran {
            Ok(()) => {}
            Err(crate::Error::Panicked {
                message, location, ..
            }) => {
                if let Some(size) = plain {
                    // `run_plain` names the item only in the progress word
                    // (the per-item path's `index` says the same); its
                    // argument was decoded, and the next starts right
                    // after it.
                    index = outcomes.running().unwrap_or(index);
                    decoded = true;
                    consumed = (index + 1) * size;
                }
                let info = PanicInfo { message, location };
                let bytes = postcard::to_allocvec(&info).unwrap_or_default();
                outcomes.failure(outcome::PANICKED, &bytes);
                outcomes.end(index);
                index += 1;
                // A panic inside the argument's Deserialize leaves the rest
                // of the payload where nobody can find its items: the task
                // stops, and the parent sends the rest again.
                if !decoded {
                    return;
                }
            }
            // `catch` only ever returns `Panicked`.
            Err(_) => return,
        }
    }
}
