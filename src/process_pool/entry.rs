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
use std::io::{BufReader, Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::sys::{self, region::Region};
use super::wire::{self, gate, outcome, Bounded, Message, PanicInfo, WireError, FAILED};

/// The environment variable that makes a process a worker.
pub(crate) const MARKER: &str = "CONCURRENT_FUTURES_WORKER";

/// The environment variable that names the worker's end of its Unix
/// socket, on which the descriptors of multiprocessing handles arrive.
pub(crate) const SOCKET_MARKER: &str = "CONCURRENT_FUTURES_WORKER_SOCKET";

/// The exit status of a worker that refused to start.
pub(crate) const BAD_START: i32 = 86;

/// The exit status of a worker that lost its pipe to the parent after it
/// had started serving (a task closed or broke it): it cannot report
/// anything any more, so it exits.
pub(crate) const LOST_PIPE: i32 = 87;

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
    loop {
        let message = match wire::read_frame_into(&mut tasks, max_frame, &mut payload) {
            Ok(message) => message,
            // The parent closed the pipe: shut down, or it died.
            Err(WireError::Closed) => return Ok(()),
            Err(e) => return Err(format!("its parent sent a bad frame: {e}")),
        };
        let (call, func, count, slot) = match message {
            Message::Task {
                call,
                func,
                count,
                slot,
            } => (call, func, count, slot),
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
        let (areas, progress, base) = region.slot_and_words(slot);
        let mut outcomes = Outcomes {
            ends: areas.ends,
            data: areas.data,
            progress,
            base,
            handed: 0,
            lent: false,
            slot,
            results: &mut results,
            max_frame,
            scratch: &mut scratch,
            spill: &mut spill,
            held: 0,
            pos: 0,
            failed: 0,
        };
        // SAFETY: `call` is the offset of a `trampoline::<A, R>` the parent
        // took the address of, in this same executable (checked above).
        let trampoline = unsafe { sys::trampoline_at(sys::address_at(call)) };
        let mut run = || trampoline(sys::address_at(func), &payload, count, &mut outcomes);
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
        let done = Message::Done {
            slot: slot as u8,
            count: outcomes.held as u32,
            failed: outcomes.failed,
            elapsed_nanos: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
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
    let mut de = postcard::Deserializer::from_bytes(payload);
    let before = crate::unwind::catch(|| (0..index).all(|_| A::deserialize(&mut de).is_ok()), None);
    match (before, de.finalize()) {
        (Ok(true), Ok(rest)) => crate::serde_message::decode_reason::<A>(error, rest, wire::why),
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

/// Writes a frame to the parent, or exits: a worker that cannot reach its
/// parent can do nothing more (a task closed or broke the pipe).
fn send_or_exit(
    results: &mut File,
    message: &Message,
    payload: &[u8],
    max: u32,
    scratch: &mut Vec<u8>,
) {
    if let Err(e) = wire::write_frame(results, message, payload, max, scratch) {
        lost_pipe(&e);
    }
}

#[cold]
fn lost_pipe(error: &WireError) -> ! {
    let pid = std::process::id();
    eprintln!(
        "concurrent-futures: worker {pid} lost its pipe to the parent ({error}), most likely \
         closed by a task; it exits"
    );
    std::process::exit(LOST_PIPE);
}

/// Where a task's outcomes go: the task's slot of the shared region, handed
/// to the parent in a `Partial` frame whenever it is full (see `wire`).
pub(crate) struct Outcomes<'a> {
    /// The slot's outcome ends and bytes.
    ends: &'a mut [u32],
    data: &'a mut [u8],
    /// The slot's progress word.
    progress: &'a std::sync::atomic::AtomicU64,
    /// The slot's base word, and its value: the task's outcomes handed
    /// over in `Partial` frames, before those the slot holds now.
    base: &'a std::sync::atomic::AtomicU64,
    handed: usize,
    slot: usize,
    results: &'a mut File,
    max_frame: u32,
    scratch: &'a mut Vec<u8>,
    /// A buffer for a value too large for the slot, or for a `Partial`.
    spill: &'a mut Vec<u8>,
    /// Whether pages of `spill` may still be lent to the pipe, unread.
    lent: bool,
    /// Outcomes in the slot now.
    held: usize,
    /// Bytes of them.
    pos: usize,
    /// Failures among them.
    failed: u32,
}

impl std::fmt::Debug for Outcomes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcomes")
            .field("slot", &self.slot)
            .field("held", &self.held)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl Outcomes<'_> {
    /// Item `index` of the task starts.
    #[inline]
    fn begin(&self, index: usize) {
        // ORDERING: Release: published progress; see `wire`.
        self.progress.store(2 * index as u64 + 1, Ordering::Release);
    }

    /// Item `index`'s outcome is in place.
    #[inline]
    fn end(&self, index: usize) {
        // ORDERING: Release: the outcome and its end, written before, are
        // visible to whoever reads this progress with Acquire.
        self.progress.store(2 * index as u64 + 2, Ordering::Release);
    }

    /// Records a value's outcome.
    #[inline]
    fn value<R: Serialize>(&mut self, value: &R) {
        // The last value to start a slot was too large for one: this one
        // likely is too, and trying the slot first would write a slot's
        // worth of bytes for nothing (a `Vec<u8>` goes a byte at a time).
        // ORDERING: Relaxed: this worker's own hint, one thread.
        if self.held == 0 && LARGE_VALUES.load(Ordering::Relaxed) {
            return self.value_slow(value);
        }
        if self.held < sys::region::MAX_ITEMS {
            match postcard::serialize_with_flavor(
                value,
                Bounded {
                    area: self.data,
                    pos: self.pos,
                },
            ) {
                Ok(end) if end - self.pos <= self.item_limit() => {
                    self.push_end(end as u32);
                    return;
                }
                Ok(end) => {
                    let reason = format!(
                        "the result takes {} bytes, over the pool's limit of {} (max_message_size)",
                        end - self.pos,
                        self.max_frame
                    );
                    return self.failure(outcome::BAD_RESULT, reason.as_bytes());
                }
                Err(postcard::Error::SerializeBufferFull) => {}
                Err(e) => {
                    let reason = crate::serde_message::encode_reason(&e, value, wire::why);
                    return self.failure(outcome::BAD_RESULT, reason.as_bytes());
                }
            }
        }
        self.value_slow(value);
    }

    /// The most bytes one result may take: what fits in a frame.
    #[inline]
    fn item_limit(&self) -> usize {
        (self.max_frame as usize).saturating_sub(64)
    }

    #[inline]
    fn push_end(&mut self, end: u32) {
        self.ends[self.held] = end;
        self.held += 1;
        self.pos = (end & !FAILED) as usize;
    }

    /// A value that did not fit: hand the slot over and try again; one too
    /// large for an empty slot goes out in a frame of its own.
    #[cold]
    fn value_slow<R: Serialize>(&mut self, value: &R) {
        if self.held > 0 {
            self.flush();
            return self.value(value);
        }
        self.reclaim_spill();
        self.spill.clear();
        match wire::push_value(self.spill, value) {
            Ok(()) => {
                let len = self.spill.len();
                if len > self.item_limit() {
                    let reason = format!(
                        "the result takes {len} bytes, over the pool's limit of {} (max_message_size)",
                        self.max_frame
                    );
                    return self.failure(outcome::BAD_RESULT, reason.as_bytes());
                }
                if len <= sys::region::DATA / 2 {
                    // It fits in the (empty) slot after all.
                    LARGE_VALUES.store(false, Ordering::Relaxed);
                    self.data[..len].copy_from_slice(self.spill);
                    return self.push_end(len as u32);
                }
                LARGE_VALUES.store(true, Ordering::Relaxed);
                let mut payload = std::mem::take(self.scratch);
                payload.clear();
                payload.extend_from_slice(&(len as u32).to_le_bytes());
                let partial = Message::Partial {
                    slot: self.slot as u8,
                    count: 1,
                };
                let mut header = Vec::new();
                // The value is lent to the pipe after the one end.
                if let Err(e) = write_partial(
                    self.results,
                    &partial,
                    &payload,
                    self.spill,
                    self.max_frame,
                    &mut header,
                ) {
                    lost_pipe(&e);
                }
                *self.scratch = payload;
                self.lent = true;
                self.handed_over(1);
            }
            Err(reason) => self.failure(outcome::BAD_RESULT, reason.as_bytes()),
        }
    }

    /// Records a failure's outcome: its tag and detail (cut to fit a slot).
    fn failure(&mut self, tag: u8, detail: &[u8]) {
        let detail = &detail[..detail.len().min(4096)];
        if self.held >= sys::region::MAX_ITEMS || self.pos + 1 + detail.len() > sys::region::DATA {
            self.flush();
        }
        let data = &mut *self.data;
        data[self.pos] = tag;
        data[self.pos + 1..self.pos + 1 + detail.len()].copy_from_slice(detail);
        let end = (self.pos + 1 + detail.len()) as u32 | FAILED;
        self.push_end(end);
        self.failed += 1;
    }

    /// Hands the slot's outcomes to the parent in `Partial` frames, as
    /// many as the frame limit asks for, and starts the slot over. Until
    /// the last frame is written whole, the slot and its base word still
    /// say what it holds (a worker that dies in between leaves the parent
    /// the frames it sent and the rest in the slot).
    #[cold]
    fn flush(&mut self) {
        // Room for a frame's payload: the limit less a header, generously.
        let room = (self.max_frame as usize).saturating_sub(64).max(8);
        self.reclaim_spill();
        let mut payload = std::mem::take(self.spill);
        let end_of = |raw: u32| (raw & !FAILED) as usize;
        let mut first = 0;
        let mut first_byte = 0;
        while first < self.held {
            // As many outcomes as fit, and at least one (each fits alone:
            // `value` refuses larger ones).
            let mut last = first + 1;
            while last < self.held
                && 4 * (last + 1 - first) + end_of(self.ends[last]) - first_byte <= room
            {
                last += 1;
            }
            let data_end = end_of(self.ends[last - 1]).min(self.data.len());
            // Pages of the last part were lent to the pipe: the buffer is
            // written again only once the parent has read them.
            if self.lent {
                sys::wait_until_read(self.results);
            }
            payload.clear();
            for &raw in &self.ends[first..last] {
                let rebased = (end_of(raw).saturating_sub(first_byte) as u32) | (raw & FAILED);
                payload.extend_from_slice(&rebased.to_le_bytes());
            }
            payload.extend_from_slice(&self.data[first_byte.min(data_end)..data_end]);
            let partial = Message::Partial {
                slot: self.slot as u8,
                count: (last - first) as u32,
            };
            send_or_exit(
                self.results,
                &partial,
                &payload,
                self.max_frame,
                self.scratch,
            );
            self.lent = true;
            first = last;
            first_byte = data_end;
        }
        *self.spill = payload;
        self.handed_over(self.held);
        self.held = 0;
        self.pos = 0;
        self.failed = 0;
    }

    /// Makes `spill` safe to write again: if its pages were lent to the
    /// pipe (`sys::write_lent`), waits until the parent has read them.
    fn reclaim_spill(&mut self) {
        if self.lent {
            sys::wait_until_read(self.results);
            self.lent = false;
        }
    }

    /// Records that `count` more outcomes are with the parent.
    fn handed_over(&mut self, count: usize) {
        self.handed += count;
        // ORDERING: Release: a parent that finds this worker dead reads it
        // with Acquire, after the frames it names.
        self.base.store(self.handed as u64, Ordering::Release);
    }
}

/// The worker's loop, as the fuzz targets run it (`crate::fuzzing`): the
/// same outcomes, built outside `serve`.
#[cfg(feature = "fuzzing")]
impl<'a> Outcomes<'a> {
    /// Outcomes into `slot` of `region`, handed over as `Partial` frames
    /// written to `results`, as `serve` builds them for a task.
    pub(crate) fn for_fuzzing(
        region: &'a mut Region,
        slot: usize,
        results: &'a mut File,
        max_frame: u32,
        scratch: &'a mut Vec<u8>,
        spill: &'a mut Vec<u8>,
    ) -> Self {
        let (areas, progress, base) = region.slot_and_words(slot);
        Outcomes {
            ends: areas.ends,
            data: areas.data,
            progress,
            base,
            handed: 0,
            lent: false,
            slot,
            results,
            max_frame,
            scratch,
            spill,
            held: 0,
            pos: 0,
            failed: 0,
        }
    }

    /// What the task's `Done` says: the outcomes in the slot now, and how
    /// many of them are failures.
    pub(crate) fn done_counts(&self) -> (u32, u32) {
        (self.held as u32, self.failed)
    }
}

/// Writes a `Partial` frame of one large value: the frame's header and the
/// end in one write, the value lent to the pipe after it.
fn write_partial(
    results: &mut File,
    partial: &Message,
    end: &[u8],
    value: &[u8],
    max: u32,
    header: &mut Vec<u8>,
) -> Result<(), WireError> {
    wire::encode_frame(partial, end, max, header)?;
    let len = (header.len() - 4) as u64 + value.len() as u64;
    if len > u64::from(max) {
        return Err(WireError::TooLarge { len, max });
    }
    header[..4].copy_from_slice(&(len as u32).to_le_bytes());
    results.write_all(header)?;
    wire::FrameSink::write_payload(results, value)?;
    Ok(())
}

/// Whether the last value that started a slot was too large for one (see
/// `Outcomes::value`).
static LARGE_VALUES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
pub(crate) fn trampoline<A, R>(func: usize, payload: &[u8], count: u32, outcomes: &mut Outcomes<'_>)
where
    A: DeserializeOwned,
    R: Serialize,
{
    // SAFETY: the parent sends `func` only next to `trampoline::<A, R>`, as
    // the address of the `fn(A) -> R` it was given.
    let f = unsafe { sys::function_at::<A, R>(func) };
    let pid = Some(worker_pid());
    let count = count as usize;
    let mut arguments = postcard::Deserializer::from_bytes(payload);
    // The item being run, and whether its argument has been decoded.
    let mut index = 0;
    let mut decoded = false;
    // The user's code (the function, and the argument's and result's serde
    // impls) may panic; each item's panic is its own. The loop runs under
    // one `catch_unwind`, entered again after a panic, so a task that does
    // not panic pays for one catch, not one per item.
    while index < count {
        let ran = crate::unwind::catch(
            || {
                while index < count {
                    outcomes.begin(index);
                    decoded = false;
                    let arg = match A::deserialize(&mut arguments) {
                        Ok(arg) => arg,
                        Err(e) => {
                            // Where the next argument starts is unknown:
                            // the task stops here, and the parent sends
                            // the rest again.
                            let reason = undecodable_argument::<A>(&e, payload, index);
                            outcomes.failure(outcome::BAD_ARGUMENT, reason.as_bytes());
                            outcomes.end(index);
                            index = count;
                            return;
                        }
                    };
                    decoded = true;
                    let result = f(arg);
                    outcomes.value(&result);
                    outcomes.end(index);
                    index += 1;
                }
            },
            pid,
        );
        match ran {
            Ok(()) => {}
            Err(crate::Error::Panicked {
                message, location, ..
            }) => {
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
