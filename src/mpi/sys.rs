//! The MPI calls, through the C shim (`shim.c`): every `unsafe` of the
//! MPI pool is here. [`Mpi`] is the proof that MPI was initialised; every
//! call takes `&mut Mpi`, so calls are one at a time. It is not `Sync`,
//! and it is `Send` only where MPI said any thread may call it, one at a
//! time (`MPI_THREAD_SERIALIZED`, which [`Mpi::init`] insists on): rank 0
//! keeps it in a mutex, which its drivers and its MPI thread take in turn.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_longlong, c_void, CStr};
use std::marker::PhantomData;

use super::protocol::MORE;
use super::spares::Spares;

/// The largest piece of a message: `MPI_Isend` counts in `int`, so a
/// message over 2 GiB (a local pool's reply to a large chunk, say) goes in
/// pieces of this size at most.
const MAX_PIECE: usize = 1 << 30;

/// Overrides [`MAX_PIECE`] (in bytes, at least 1), for tests that send
/// messages in pieces without sending gigabytes. Read once, by each rank
/// for its own sends.
pub(crate) const MAX_PIECE_VARIABLE: &str = "CONCURRENT_FUTURES_MPI_MAX_PIECE";

extern "C" {
    fn cf_mpi_init(
        rank: *mut c_int,
        size: *mut c_int,
        serialized: *mut c_int,
        spawned: *mut c_int,
    ) -> c_int;
    fn cf_mpi_spawn(exe: *const c_char, count: c_int, errors: *mut c_int) -> c_int;
    fn cf_mpi_node_ranks(count: *mut c_int, index: *mut c_int) -> c_int;
    fn cf_mpi_isend(
        bytes: *const c_void,
        len: c_longlong,
        dest: c_int,
        tag: c_int,
        request: *mut *mut c_void,
    ) -> c_int;
    fn cf_mpi_test(request: *mut c_void, done: *mut c_int) -> c_int;
    fn cf_mpi_probe(
        source: c_int,
        found: *mut c_int,
        from: *mut c_int,
        tag: *mut c_int,
        len: *mut c_longlong,
    ) -> c_int;
    fn cf_mpi_take(bytes: *mut c_void, len: c_longlong) -> c_int;
    fn cf_mpi_finalize() -> c_int;
    fn cf_mpi_error_text(code: c_int, text: *mut c_char);
    fn cf_mpi_max_error_text() -> c_int;
    fn cf_mpi_node_name(name: *mut c_char) -> c_int;
    fn cf_mpi_max_node_name() -> c_int;
}

/// MPI, initialised on this thread.
#[derive(Debug)]
pub(crate) struct Mpi {
    pub(crate) rank: usize,
    pub(crate) size: usize,
    /// Ranks on this node, this one included.
    pub(crate) node_ranks: usize,
    /// This node's name.
    pub(crate) node: String,
    /// Whether rank 0 started this process with `MPI_Comm_spawn` (its
    /// node's other ranks are then its fellow workers, rank 0 not among
    /// them).
    pub(crate) spawned: bool,
    /// Sends under way: each one's ticket, the requests of its pieces not
    /// complete yet, and the bytes MPI reads until they all are.
    outbox: Vec<(u64, Vec<*mut c_void>, Vec<u8>)>,
    /// The ticket of the next send.
    next_ticket: u64,
    /// The largest piece one message goes in (see [`Mpi::post`]).
    max_piece: usize,
    /// Per source, the pieces of a message received so far.
    partial: HashMap<usize, Vec<u8>>,
    /// Buffers of sends that completed and of messages read, for the next
    /// ones (see `spares`).
    spares: Spares,
    /// Not `Sync`: one call at a time.
    _one_at_a_time: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: MPI was initialised with `MPI_THREAD_SERIALIZED`, which lets any
// thread call it as long as no two calls overlap; every call takes
// `&mut Mpi`, so two cannot, and an `Mpi` that moves between threads does
// so through a mutex or a channel, which order the calls. Its requests
// are MPI handles, valid on any thread. `Mpi::init` fails, and makes no
// `Mpi`, where MPI provides less.
unsafe impl Send for Mpi {}

impl Drop for Mpi {
    fn drop(&mut self) {
        // Sends still under way read their bytes until they complete, which
        // nobody will see now: the bytes are leaked, never freed under MPI.
        for (_, _, bytes) in self.outbox.drain(..) {
            std::mem::forget(bytes);
        }
    }
}

/// A message a probe found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub(crate) from: usize,
    pub(crate) tag: i32,
    pub(crate) len: usize,
}

fn check(rc: c_int, what: &str) -> Result<(), String> {
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: a query of a constant.
    let room = unsafe { cf_mpi_max_error_text() }.max(0) as usize + 1;
    let mut text = vec![0 as c_char; room];
    // SAFETY: `text` has the room the shim asks for, and it writes a NUL.
    unsafe { cf_mpi_error_text(rc, text.as_mut_ptr()) };
    // SAFETY: NUL-terminated above, within `text`.
    let text = unsafe { CStr::from_ptr(text.as_ptr()) }.to_string_lossy();
    Err(format!("{what} failed: {text} (MPI error {rc})"))
}

impl Mpi {
    /// Initialises MPI (`MPI_Init_thread`, serialized) on this thread, and
    /// learns where this rank is. Collective: every rank calls it.
    pub(crate) fn init() -> Result<Mpi, String> {
        let (mut rank, mut size, mut serialized, mut spawned) = (0, 0, 0, 0);
        check(
            // SAFETY: four valid out-pointers; called once per process (by
            // `crate::mpi::start_mpi`, guarded by a `Once` or a `OnceLock`).
            unsafe { cf_mpi_init(&mut rank, &mut size, &mut serialized, &mut spawned) },
            "MPI_Init_thread",
        )?;
        if serialized == 0 {
            // `Mpi` is `Send` on the strength of this level.
            return Err(String::from(
                "this MPI library does not provide MPI_THREAD_SERIALIZED (calls from any \
                 thread, one at a time), which this crate needs",
            ));
        }
        let (mut count, mut index) = (0, 0);
        check(
            // SAFETY: two valid out-pointers, after MPI_Init.
            unsafe { cf_mpi_node_ranks(&mut count, &mut index) },
            "MPI_Comm_split_type",
        )?;
        // SAFETY: a query of a constant.
        let room = unsafe { cf_mpi_max_node_name() }.max(0) as usize + 1;
        let mut name = vec![0 as c_char; room];
        check(
            // SAFETY: `name` has the room the shim asks for; it writes a NUL.
            unsafe { cf_mpi_node_name(name.as_mut_ptr()) },
            "MPI_Get_processor_name",
        )?;
        // SAFETY: NUL-terminated by the shim, within `name`.
        let node = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Ok(Mpi {
            rank: rank.max(0) as usize,
            size: size.max(0) as usize,
            node_ranks: count.max(1) as usize,
            node,
            spawned: spawned != 0,
            outbox: Vec::new(),
            next_ticket: 0,
            max_piece: std::env::var(MAX_PIECE_VARIABLE)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .map_or(MAX_PIECE, |n| n.clamp(1, MAX_PIECE)),
            partial: HashMap::new(),
            spares: Spares::default(),
            _one_at_a_time: PhantomData,
        })
    }

    /// Starts `count` processes of the executable `exe` with
    /// `MPI_Comm_spawn`; they are ranks `1..=count` from now on. For rank 0
    /// alone in its world, before any message.
    pub(crate) fn spawn(&mut self, exe: &CStr, count: usize) -> Result<(), String> {
        if self.rank != 0 || self.size != 1 {
            return Err(format!(
                "spawn mode needs rank 0 alone, and this job has {} ranks",
                self.size
            ));
        }
        let count_c = c_int::try_from(count).map_err(|_| format!("cannot spawn {count} ranks"))?;
        let mut errors: Vec<c_int> = vec![0; count];
        // SAFETY: `exe` is NUL-terminated; `errors` has room for `count`
        // codes, as MPI_Comm_spawn writes.
        let rc = unsafe { cf_mpi_spawn(exe.as_ptr(), count_c, errors.as_mut_ptr()) };
        check(rc, "MPI_Comm_spawn")?;
        if let Some((at, &code)) = errors.iter().enumerate().find(|(_, &code)| code != 0) {
            return check(code, &format!("MPI_Comm_spawn of worker {}", at + 1));
        }
        self.size = count + 1;
        Ok(())
    }

    /// Starts sending `bytes` to `dest` with `tag`; the outbox keeps them
    /// until the send is complete ([`progress`](Self::progress)). Its
    /// ticket says when it is ([`is_sent`](Self::is_sent)).
    ///
    /// A message over the largest piece goes as several MPI messages: every
    /// piece but the last with the tag [`MORE`], the last with `tag`. MPI
    /// delivers one sender's messages in the order sent, whatever their tag
    /// (every receive here matches any tag), so [`receive`](Self::receive)
    /// puts them back together.
    pub(crate) fn post(&mut self, bytes: Vec<u8>, dest: usize, tag: i32) -> Result<u64, String> {
        let mut requests = Vec::new();
        let mut pieces = bytes.chunks(self.max_piece).peekable();
        let mut last_piece = [].as_slice();
        let mut outcome = Ok(());
        while let Some(piece) = pieces.next() {
            if pieces.peek().is_none() {
                last_piece = piece;
                break;
            }
            outcome = self.isend(piece, dest, MORE, &mut requests);
            if outcome.is_err() {
                break;
            }
        }
        if outcome.is_ok() {
            // An empty message is one empty piece.
            outcome = self.isend(last_piece, dest, tag, &mut requests);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        // Even after a failure: the pieces posted read `bytes` until they
        // complete (or forever, and the outbox leaks them on drop).
        if !requests.is_empty() {
            self.outbox.push((ticket, requests, bytes));
        }
        outcome.map(|()| ticket)
    }

    /// Posts one piece, whose bytes the caller keeps unchanged in the
    /// outbox until its request completes.
    fn isend(
        &mut self,
        piece: &[u8],
        dest: usize,
        tag: i32,
        requests: &mut Vec<*mut c_void>,
    ) -> Result<(), String> {
        let mut request = std::ptr::null_mut();
        // SAFETY: `piece` is valid for its length; it lies in the heap
        // buffer of a `Vec` that the caller moves into the outbox (which
        // does not move the buffer) and keeps unchanged until `cf_mpi_test`
        // says this request is complete (or leaks, on drop).
        let rc = unsafe {
            cf_mpi_isend(
                piece.as_ptr().cast(),
                piece.len() as c_longlong,
                dest as c_int,
                tag,
                &mut request,
            )
        };
        check(rc, "MPI_Isend")?;
        requests.push(request);
        Ok(())
    }

    /// Whether the send of `ticket` is complete (as of the last
    /// [`progress`](Self::progress)).
    pub(crate) fn is_sent(&self, ticket: u64) -> bool {
        self.outbox.iter().all(|&(t, ..)| t != ticket)
    }

    /// Lets sends under way complete, and frees the bytes of those that
    /// have.
    pub(crate) fn progress(&mut self) -> Result<(), String> {
        let mut failed = None;
        for (_, requests, _) in &mut self.outbox {
            requests.retain(|&request| {
                if failed.is_some() {
                    return true;
                }
                let mut done = 0;
                // SAFETY: `request` came from `cf_mpi_isend` and has not
                // completed (complete ones leave the list right here).
                let rc = unsafe { cf_mpi_test(request, &mut done) };
                if let Err(e) = check(rc, "MPI_Test") {
                    failed = Some(e);
                    return true;
                }
                done == 0
            });
        }
        let mut at = 0;
        while at < self.outbox.len() {
            if self.outbox[at].1.is_empty() {
                let (_, _, bytes) = self.outbox.remove(at);
                self.spares.keep(bytes);
            } else {
                at += 1;
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// An empty buffer with room for a message of `len` bytes, kept from
    /// an earlier message if one fits (see `spares`).
    pub(crate) fn buffer(&mut self, len: usize) -> Vec<u8> {
        self.spares.take(len)
    }

    /// Keeps `buffer`, done with, for a later message.
    pub(crate) fn keep(&mut self, buffer: Vec<u8>) {
        self.spares.keep(buffer);
    }

    /// Sends under way.
    pub(crate) fn sending(&self) -> usize {
        self.outbox.len()
    }

    /// Receives a whole message that has arrived (from `source`, or any
    /// rank) into `buffer`, without waiting: its source and tag. The
    /// pieces of a message sent in pieces ([`post`](Self::post)) are taken
    /// as they come and kept until its last.
    pub(crate) fn receive(
        &mut self,
        source: Option<usize>,
        buffer: &mut Vec<u8>,
    ) -> Result<Option<(usize, i32)>, String> {
        loop {
            let Some(found) = self.probe(source)? else {
                return Ok(None);
            };
            if found.tag != MORE && !self.partial.contains_key(&found.from) {
                // A message in one piece, the common case: into `buffer`,
                // or a kept one with room for it.
                if buffer.capacity() < found.len {
                    let small = std::mem::replace(buffer, self.spares.take(found.len));
                    self.spares.keep(small);
                }
                self.take_whole(buffer, found.len)?;
                return Ok(Some((found.from, found.tag)));
            }
            let mut whole = self.partial.remove(&found.from).unwrap_or_default();
            let at = whole.len();
            whole.resize(at + found.len, 0);
            self.take(&mut whole[at..])?;
            if found.tag == MORE {
                self.partial.insert(found.from, whole);
                continue;
            }
            *buffer = whole;
            return Ok(Some((found.from, found.tag)));
        }
    }

    /// Looks for a message (from `source`, or any rank) without waiting;
    /// one found must be [`take`](Self::take)n before the next probe.
    fn probe(&mut self, source: Option<usize>) -> Result<Option<Found>, String> {
        let (mut found, mut from, mut tag, mut len) = (0, 0, 0, 0);
        let source = source.map_or(-1, |s| s as c_int);
        // SAFETY: valid out-pointers.
        let rc = unsafe { cf_mpi_probe(source, &mut found, &mut from, &mut tag, &mut len) };
        check(rc, "MPI_Improbe")?;
        Ok((found != 0).then(|| Found {
            from: from.max(0) as usize,
            tag,
            len: len.max(0) as usize,
        }))
    }

    /// Receives the message the last probe found into `into`, which has
    /// its length.
    fn take(&mut self, into: &mut [u8]) -> Result<(), String> {
        // SAFETY: `into` is valid for writes of its length, which the shim
        // checks is at least the message's.
        let rc = unsafe { cf_mpi_take(into.as_mut_ptr().cast(), into.len() as c_longlong) };
        check(rc, "MPI_Mrecv")
    }

    /// Receives the message the last probe found, `len` bytes, into
    /// `buffer` (emptied first), without first zeroing the room it takes.
    fn take_whole(&mut self, buffer: &mut Vec<u8>, len: usize) -> Result<(), String> {
        buffer.clear();
        buffer.reserve(len);
        let room = buffer.spare_capacity_mut();
        // SAFETY: `room` is valid for writes of its length, at least
        // `len`, which the shim checks is at least the message's.
        let rc = unsafe { cf_mpi_take(room.as_mut_ptr().cast(), len as c_longlong) };
        check(rc, "MPI_Mrecv")?;
        // SAFETY: `MPI_Mrecv` succeeded: it wrote the whole message, which
        // is `len` bytes (the probe's count), into the start of `room`.
        unsafe { buffer.set_len(len) };
        Ok(())
    }

    /// Finalises MPI once every send under way is complete; the caller
    /// exits soon after.
    pub(crate) fn finalize(mut self) -> Result<(), String> {
        while self.sending() > 0 {
            self.progress()?;
            std::thread::yield_now();
        }
        // SAFETY: no send is under way (above); every message this rank
        // waits for has been received, and the stop exchange ensures that
        // no rank still sends to it.
        check(unsafe { cf_mpi_finalize() }, "MPI_Finalize")
    }
}
