//! How a worker's frames reach the parent: the [`Sink`] they are written
//! to (its result pipe, or the buffer of an MPI rank's reply), and the
//! helpers that write them or give up.

use std::fs::File;
use std::io::Write;

use super::super::sys;
use super::super::wire::{self, Message, WireError};
use super::LOST_PIPE;

/// Writes a frame to the parent, or exits: a worker that cannot reach its
/// parent can do nothing more (a task closed or broke the pipe).
pub(crate) fn send_or_exit(
    results: &mut impl wire::FrameSink,
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
pub(crate) fn lost_pipe(error: &WireError) -> ! {
    let pid = std::process::id();
    eprintln!(
        "concurrent-futures: worker {pid} lost its pipe to the parent ({error}), most likely \
         closed by a task; it exits"
    );
    std::process::exit(LOST_PIPE);
}

/// Where a worker's frames go: its result pipe, or (an MPI rank that runs
/// tasks itself) a buffer sent as one message once the task is done.
#[derive(Debug)]
pub(crate) enum Sink<'a> {
    /// The result pipe, to which large payloads are lent.
    Pipe(&'a mut File),
    /// A buffer of frames.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Buffer(&'a mut Vec<u8>),
}

impl Write for Sink<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Pipe(file) => file.write(bytes),
            Sink::Buffer(buffer) => buffer.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Pipe(file) => file.flush(),
            Sink::Buffer(_) => Ok(()),
        }
    }
}

impl wire::FrameSink for Sink<'_> {
    fn write_payload(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Pipe(file) => file.write_payload(bytes),
            Sink::Buffer(buffer) => buffer.write_payload(bytes),
        }
    }
}

impl Sink<'_> {
    /// Whether a payload written here may still be lent, unread.
    pub(super) fn lends(&self) -> bool {
        matches!(self, Sink::Pipe(_))
    }

    /// Waits until the reader has read every lent page.
    pub(super) fn wait_until_read(&self) {
        if let Sink::Pipe(file) = self {
            sys::wait_until_read(file);
        }
    }
}

/// Writes a `Partial` frame of one large value: the frame's header and the
/// end in one write, the value lent to the pipe after it.
pub(super) fn write_partial(
    results: &mut Sink<'_>,
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
