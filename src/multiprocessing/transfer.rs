//! How handles ride inside serialized values: a side table of descriptors.
//!
//! The pattern is ipc-channel's. While this crate encodes a value that is
//! going to another process ([`capture`]), a thread-local table is active:
//! a handle's `Serialize` puts a duplicate of its descriptor into it and
//! writes only the index. The transport sends the table's descriptors
//! beside the bytes (`SCM_RIGHTS` over a Unix socket). The receiver fills
//! the table with the descriptors it received ([`with_received`]) before
//! it decodes, and a handle's `Deserialize` takes its descriptor back out
//! by index.
//!
//! Outside those scopes a handle refuses to be serialized (to JSON, to a
//! file, through a [`Queue`](super::Queue), whose items are bytes in shared
//! memory): a bare number there would name nothing. Postcard, the crate's
//! wire format, drops a serde error's message, so the refusal's text is
//! also kept here ([`take_refusal`]) for the crate to report.
//!
//! Cost when no handle is involved: [`capture`] swaps a thread-local
//! value in and out (a few nanoseconds, and no allocation), which is all
//! the process pool's submit path pays.

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};

/// The table's state on this thread.
#[derive(Debug, Default)]
enum Table {
    /// No transfer in progress: handles refuse to be (de)serialized.
    #[default]
    Idle,
    /// Encoding a value for another process: descriptors collected here.
    Capture(Vec<OwnedFd>),
    /// Decoding a value that came with these descriptors.
    Receive(Vec<Option<OwnedFd>>),
    /// Encoding for a transport that cannot carry descriptors, named here.
    Refuse(&'static str),
}

thread_local! {
    static TABLE: RefCell<Table> = const { RefCell::new(Table::Idle) };
    /// Why the last handle on this thread refused to be serialized.
    static REFUSAL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with `table` active, then puts the previous table back (also
/// if `f` panics) and returns `f`'s result with the table as it was left.
fn with_table<R>(table: Table, f: impl FnOnce() -> R) -> (R, Table) {
    struct Restore(Option<Table>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                let _ = TABLE.try_with(|t| *t.borrow_mut() = previous);
            }
        }
    }
    let _ = take_refusal();
    let previous = TABLE.with(|t| t.replace(table));
    let mut restore = Restore(Some(previous));
    let result = f();
    let previous = restore.0.take().unwrap_or_default();
    let used = TABLE.with(|t| t.replace(previous));
    (result, used)
}

/// Runs `f` (which encodes a value for another process) with descriptor
/// capture on; returns its result and the descriptors its handles put in,
/// in index order.
pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let (result, table) = with_table(Table::Capture(Vec::new()), f);
    match table {
        Table::Capture(fds) => (result, fds),
        _ => (result, Vec::new()),
    }
}

/// Runs `f` (which decodes a value received with `fds`) so that handles
/// in it find their descriptors. Descriptors that no handle took are
/// closed when it returns.
pub(crate) fn with_received<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    let table = Table::Receive(fds.into_iter().map(Some).collect());
    with_table(table, f).0
}

/// Runs `f` (which encodes a value for `place`, a transport that carries
/// bytes only) so that a handle in the value refuses with a message that
/// names `place`.
pub(crate) fn refusing<R>(place: &'static str, f: impl FnOnce() -> R) -> R {
    with_table(Table::Refuse(place), f).0
}

/// The message of the last refusal on this thread, if any (taken).
pub(crate) fn take_refusal() -> Option<String> {
    REFUSAL.try_with(|r| r.borrow_mut().take()).ok().flatten()
}

/// Keeps `message` as the reason a handle's serde impl is about to fail
/// with (which `process_pool::wire::why` reports), and returns it.
pub(crate) fn note(message: String) -> String {
    let _ = REFUSAL.try_with(|r| *r.borrow_mut() = Some(message.clone()));
    message
}

/// Called by a handle's `Serialize`: the index under which `fd` (a
/// duplicate of it) travels, or why it cannot.
pub(crate) fn put(fd: &impl AsFd, what: &str) -> Result<u32, String> {
    TABLE.with(|t| match &mut *t.borrow_mut() {
        Table::Capture(fds) => {
            let index = u32::try_from(fds.len()).map_err(|_| {
                note(String::from(
                    "too many multiprocessing handles in one value",
                ))
            })?;
            let dup = fd.as_fd().try_clone_to_owned().map_err(|e| {
                note(format!(
                    "cannot duplicate the descriptor of a {what} to send it: {e}"
                ))
            })?;
            fds.push(dup);
            Ok(index)
        }
        Table::Refuse(place) => Err(note(format!(
            "a multiprocessing {what} cannot go through {place}, which carries bytes only; \
             send it through a Connection, or pass it as an argument of Process::spawn or \
             of a process-pool task"
        ))),
        Table::Idle | Table::Receive(_) => Err(note(format!(
            "a multiprocessing {what} can only travel through this crate: as an argument of \
             Process::spawn or of a ProcessPoolExecutor task, or through a Connection; \
             serialized anywhere else it would be a number that names nothing"
        ))),
    })
}

/// Called by a handle's `Deserialize`: the descriptor that travelled
/// under `index`.
pub(crate) fn take(index: u32, what: &str) -> Result<OwnedFd, String> {
    TABLE.with(|t| match &mut *t.borrow_mut() {
        Table::Receive(fds) => fds
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or_else(|| {
                note(format!(
                    "the descriptor of a multiprocessing {what} (index {index}) did not arrive"
                ))
            }),
        _ => Err(note(format!(
            "a multiprocessing {what} can only be decoded by this crate, from the message \
             that carried its descriptor"
        ))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some_fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn capture_collects_and_restores() {
        let fd = some_fd();
        let (index, fds) = capture(|| put(&fd, "Lock").unwrap());
        assert_eq!((index, fds.len()), (0, 1));
        assert!(put(&fd, "Lock").is_err(), "capture must end with its scope");
        assert!(take_refusal()
            .unwrap()
            .contains("only travel through this crate"));
    }

    #[test]
    fn received_descriptors_are_taken_once() {
        let got = with_received(vec![some_fd()], || {
            let first = take(0, "Lock").is_ok();
            let second = take(0, "Lock").is_err();
            let missing = take(5, "Lock").is_err();
            first && second && missing
        });
        assert!(got);
        assert!(take(0, "Lock").is_err());
    }

    #[test]
    fn refusing_names_the_place_and_nests() {
        let fd = some_fd();
        let (inner, fds) = capture(|| refusing("a Queue", || put(&fd, "Value")));
        assert!(inner.unwrap_err().contains("cannot go through a Queue"));
        assert!(fds.is_empty());
    }

    #[test]
    fn a_panic_inside_restores_the_table() {
        let fd = some_fd();
        let _ = std::panic::catch_unwind(|| capture(|| panic!("in a Serialize impl")));
        assert!(put(&fd, "Lock").is_err());
    }
}
