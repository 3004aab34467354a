//! [`pipe`] and [`Connection`]: a duplex message channel between two
//! processes, that can carry multiprocessing handles.
//!
//! # Wire
//!
//! A connected pair of Unix `SOCK_SEQPACKET` sockets. A message is one
//! value, postcard-encoded, in one or more datagrams of at most
//! [`CHUNK`] bytes:
//!
//! ```text
//! first datagram  len:u32 ‖ fds:u32 ‖ the first bytes   (+ up to 253 descriptors)
//! then            the next bytes                        (+ up to 253 descriptors)
//! ```
//!
//! The handles inside the value ride as `SCM_RIGHTS` descriptors beside
//! the bytes (see `transfer`). A message of up to one datagram is sent
//! and received whole by one system call, so several processes may send
//! such messages on the same end at once; longer messages from several
//! senders at once on the same end may interleave, which the receiver
//! reports as [`Error::Decode`] (never as anything worse) — Python's
//! `Connection` warns of the same.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::transfer;
use crate::process_pool::sys::{self, MAX_FDS_PER_MESSAGE};
use crate::Error;

/// The largest datagram.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The largest message a connection accepts (1 GiB, the process pool's
/// default frame limit).
const MAX_MESSAGE: usize = 1 << 30;

const HEADER: usize = 8;

/// One end of a duplex channel between processes, made by [`pipe`]:
/// Python's `multiprocessing.connection.Connection`.
///
/// [`send`](Self::send) encodes a value and sends it to the other end;
/// [`recv`](Self::recv) waits for the next value from it. Values are
/// `serde` types, and may hold multiprocessing handles ([`Lock`](super::Lock),
/// [`Queue`](super::Queue), another `Connection`…), whose descriptors
/// travel beside the bytes.
///
/// The channel is open while any process holds a handle to each end:
/// [`recv`](Self::recv) reports [`Error::Disconnected`] only when every
/// handle to the other end is gone, in every process (so drop the ends a
/// process does not use, as in Python).
///
/// # Examples
///
/// ```
/// use concurrent_futures::multiprocessing::{pipe, Connection};
///
/// let (a, b): (Connection<String>, Connection<String>) = pipe()?;
/// a.send("ping".into())?;
/// assert_eq!(b.recv()?, "ping");
/// b.send("pong".into())?;
/// assert_eq!(a.recv()?, "pong");
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct Connection<T> {
    inner: Arc<Inner>,
    _type: PhantomData<fn(T) -> T>,
}

struct Inner {
    socket: OwnedFd,
    /// One sender and one receiver at a time in this process, so that a
    /// multi-datagram message is never interleaved by two threads.
    sending: Mutex<()>,
    receiving: Mutex<Vec<u8>>,
}

/// A new channel: its two ends, each of which can send to and receive
/// from the other. Python's `multiprocessing.Pipe()` (duplex).
///
/// # Errors
///
/// [`Error::Os`] if the sockets cannot be created.
///
/// # Examples
///
/// ```
/// let (a, b) = concurrent_futures::multiprocessing::pipe::<u32>()?;
/// a.send(7)?;
/// assert_eq!(b.recv()?, 7);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[doc(alias = "Pipe")]
pub fn pipe<T: Serialize + DeserializeOwned>() -> Result<(Connection<T>, Connection<T>), Error> {
    let (a, b) = sys::seqpacket_pair().map_err(|e| Error::Os {
        what: String::from("creating a pipe's sockets"),
        reason: e.to_string(),
    })?;
    Ok((Connection::from_socket(a), Connection::from_socket(b)))
}

fn os(what: &str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EPIPE | libc::ECONNRESET) => Error::Disconnected,
        _ => Error::Os {
            what: what.to_owned(),
            reason: e.to_string(),
        },
    }
}

impl<T: Serialize + DeserializeOwned> Connection<T> {
    fn from_socket(socket: OwnedFd) -> Connection<T> {
        Connection {
            inner: Arc::new(Inner {
                socket,
                sending: Mutex::new(()),
                receiving: Mutex::new(Vec::new()),
            }),
            _type: PhantomData,
        }
    }

    /// Sends `value` to the other end. Does not wait for it to be received
    /// unless the socket's buffer is full.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the value does not encode (or is over 1 GiB);
    /// [`Error::Disconnected`] if the other end is closed everywhere;
    /// [`Error::Os`] if sending fails otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = concurrent_futures::multiprocessing::pipe()?;
    /// a.send(vec![1u8, 2, 3])?;
    /// assert_eq!(b.recv()?, [1, 2, 3]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn send(&self, value: T) -> Result<(), Error> {
        let (bytes, fds) = transfer::capture(|| postcard::to_allocvec(&value));
        let bytes = bytes.map_err(|e| Error::Encode {
            what: "message",
            reason: crate::process_pool::wire::why(&e),
        })?;
        if bytes.len() > MAX_MESSAGE {
            return Err(Error::Encode {
                what: "message",
                reason: format!("{} bytes is over the limit of {MAX_MESSAGE}", bytes.len()),
            });
        }
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        let mut first = Vec::with_capacity(CHUNK.min(HEADER + bytes.len()));
        first.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        first.extend_from_slice(&(fds.len() as u32).to_le_bytes());
        let (head, mut rest) = bytes.split_at(bytes.len().min(CHUNK - HEADER));
        first.extend_from_slice(head);
        let (mut fd_chunk, mut fds_rest) =
            borrowed.split_at(borrowed.len().min(MAX_FDS_PER_MESSAGE));

        let _one_sender = self.inner.sending.lock();
        let what = "sending on a Connection";
        sys::send_with_fds(&self.inner.socket, &first, fd_chunk).map_err(|e| os(what, e))?;
        while !rest.is_empty() || !fds_rest.is_empty() {
            let (part, after) = rest.split_at(rest.len().min(CHUNK));
            (fd_chunk, fds_rest) = fds_rest.split_at(fds_rest.len().min(MAX_FDS_PER_MESSAGE));
            // Never an empty datagram (that reads as end of file): one
            // with descriptors only carries a byte the receiver, whose
            // bytes are complete, does not count.
            let part = if part.is_empty() { &[0u8][..] } else { part };
            sys::send_with_fds(&self.inner.socket, part, fd_chunk).map_err(|e| os(what, e))?;
            rest = after;
        }
        Ok(())
    }

    /// Waits for the next value from the other end.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] if the other end is closed everywhere and
    /// nothing is left to receive; [`Error::Decode`] if the message does
    /// not decode as a `T`; [`Error::Os`] if receiving fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{multiprocessing::pipe, Error};
    ///
    /// let (a, b) = pipe::<u8>()?;
    /// drop(a);
    /// assert_eq!(b.recv(), Err(Error::Disconnected));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn recv(&self) -> Result<T, Error> {
        self.recv_until(None)
    }

    /// Like [`recv`](Self::recv), waiting at most `timeout` for the
    /// message to start. Python's `poll(timeout)` then `recv()`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if nothing came, and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{multiprocessing::pipe, Error};
    /// use std::time::Duration;
    ///
    /// let (_a, b) = pipe::<u8>()?;
    /// assert!(matches!(b.recv_timeout(Duration::from_millis(1)), Err(Error::Timeout(_))));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, Error> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_until(Some((deadline, timeout))),
            None => self.recv(),
        }
    }

    fn recv_until(&self, deadline: Option<(Instant, Duration)>) -> Result<T, Error> {
        let what = "receiving on a Connection";
        let mut buffer = self.inner.receiving.lock();
        if let Some((deadline, timeout)) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match sys::wait_readable(&self.inner.socket, Some(left)) {
                Ok(true) => {}
                Ok(false) => return Err(Error::Timeout(timeout)),
                Err(e) => return Err(os(what, e)),
            }
        }
        let mut fds = Vec::new();
        let mut datagram = vec![0u8; CHUNK];
        let got = sys::recv_with_fds(&self.inner.socket, &mut datagram, &mut fds)
            .map_err(|e| os(what, e))?;
        if got == 0 {
            return Err(Error::Disconnected);
        }
        let bad = |reason: String| Error::Decode {
            what: "message",
            reason,
        };
        if got < HEADER {
            return Err(bad(format!("a datagram of {got} bytes has no header")));
        }
        let word = |at: usize| {
            let mut bytes = [0; 4];
            bytes.copy_from_slice(&datagram[at..at + 4]);
            u32::from_le_bytes(bytes) as usize
        };
        let (len, fd_count) = (word(0), word(4));
        if len > MAX_MESSAGE || fd_count > len.max(1) * MAX_FDS_PER_MESSAGE {
            return Err(bad(format!(
                "a header of {len} bytes and {fd_count} descriptors"
            )));
        }
        buffer.clear();
        buffer.extend_from_slice(&datagram[HEADER..got]);
        while buffer.len() < len || fds.len() < fd_count {
            let got = sys::recv_with_fds(&self.inner.socket, &mut datagram, &mut fds)
                .map_err(|e| os(what, e))?;
            if got == 0 {
                return Err(bad(String::from(
                    "the other end closed in the middle of a message",
                )));
            }
            if buffer.len() < len {
                buffer.extend_from_slice(&datagram[..got]);
            }
        }
        if buffer.len() != len || fds.len() != fd_count {
            return Err(bad(format!(
                "got {} bytes and {} descriptors for a message of {len} and {fd_count} \
                 (two senders interleaved on one end?)",
                buffer.len(),
                fds.len()
            )));
        }
        transfer::with_received(fds, || postcard::from_bytes(&buffer)).map_err(|e| Error::Decode {
            what: "message",
            reason: crate::process_pool::wire::why(&e),
        })
    }
}

impl<T> Clone for Connection<T> {
    fn clone(&self) -> Self {
        Connection {
            inner: Arc::clone(&self.inner),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T> Serialize for Connection<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index =
            transfer::put(&self.inner.socket, "Connection").map_err(serde::ser::Error::custom)?;
        serializer.serialize_u32(index)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Connection<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let index = u32::deserialize(deserializer)?;
        let socket = transfer::take(index, "Connection").map_err(D::Error::custom)?;
        if !sys::is_seqpacket(&socket) {
            return Err(D::Error::custom(transfer::note(String::from(
                "the received Connection's descriptor is not a Unix SOCK_SEQPACKET socket",
            ))));
        }
        Ok(Connection::from_socket(socket))
    }
}
