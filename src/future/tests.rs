//! The state machine's own tests.

use super::*;

#[test]
fn a_promise_completes_its_future_once() {
    let (promise, future) = Promise::new();
    assert!(promise.start());
    promise.complete(Ok(5));
    assert_eq!(future.try_result(), Some(Ok(5)));
    assert_eq!(future.try_result(), Some(Err(Error::AlreadyRetrieved)));
}

#[test]
fn a_dropped_unstarted_promise_cancels() {
    let (promise, future) = Promise::<u8>::new();
    drop(promise);
    assert!(future.cancelled());
    assert_eq!(future.result(), Err(Error::Cancelled));
}

#[test]
fn a_dropped_running_promise_fails_instead_of_hanging() {
    let (promise, future) = Promise::<u8>::new();
    assert!(promise.start());
    drop(promise);
    assert!(matches!(future.result(), Err(Error::BrokenPool { .. })));
}

#[test]
fn a_cancelled_future_does_not_start() {
    let (promise, future) = Promise::<u8>::new();
    assert!(future.cancel());
    assert!(future.cancel(), "cancel on a cancelled future is true");
    assert!(!promise.start());
    promise.complete(Ok(1));
    assert!(future.cancelled());
}

/// A map's consumer runs a chunk itself only if it took the chunk over
/// from pending: never one somebody else cancelled (`shutdown_cancel`),
/// never one a worker started.
#[test]
fn only_a_pending_future_can_be_taken_over() {
    let (promise, future) = Promise::<u8>::new();
    assert!(future.take_over());
    assert!(!future.take_over(), "taken over twice");
    assert!(!promise.start());

    let (_promise, future) = Promise::<u8>::new();
    assert!(future.cancel());
    assert!(!future.take_over(), "cancelled by somebody else");

    let (promise, future) = Promise::<u8>::new();
    assert!(promise.start());
    assert!(!future.take_over(), "started by a worker");
    promise.complete(Ok(1));
    assert!(!future.take_over(), "finished");
}

#[test]
fn a_running_future_cannot_be_cancelled() {
    let (promise, future) = Promise::<u8>::new();
    assert!(promise.start());
    assert!(future.running());
    assert!(!future.cancel());
    promise.complete(Ok(1));
    assert!(!future.cancel());
    assert_eq!(future.result(), Ok(1));
}
