//! Catching a task's panic as an [`Error::Panicked`] with its location.
//!
//! `catch_unwind` gives the panic's payload but not where it happened. The
//! location is only known to the panic hook, so the first pool that is built
//! installs a hook that records it in a thread-local and then calls the hook
//! that was there before (so the usual `thread '…' panicked at …` message is
//! still printed, or whatever the application's own hook does). If the
//! application replaces the hook afterwards, panics are still caught; only the
//! location is missing from the error.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::Error;

thread_local! {
    /// Where the last panic on this thread happened, if our hook saw it.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the location-recording hook once per process.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if let Some(location) = info.location() {
                // `try_with`: the thread-local may already be gone while the
                // thread is being torn down; then there is nothing to record.
                let _ = LAST_LOCATION.try_with(|cell| {
                    if let Ok(mut slot) = cell.try_borrow_mut() {
                        *slot = Some(location.to_string());
                    }
                });
            }
            previous(info);
        }));
    });
}

/// Runs `f`, turning a panic into [`Error::Panicked`] with its message and,
/// when the hook saw it, its location. `pid` is the worker's pid for a
/// process-pool task.
pub(crate) fn catch<R>(f: impl FnOnce() -> R, pid: Option<u32>) -> Result<R, Error> {
    // AssertUnwindSafe: after a panic nothing of `f`'s captured state is
    // looked at again; the payload is turned into an error and dropped.
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let location = LAST_LOCATION
            .try_with(|cell| cell.borrow_mut().take())
            .ok()
            .flatten();
        Error::from_panic(&*payload, location, pid)
    })
}
