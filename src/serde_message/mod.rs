//! The message of a value's own serde error, which postcard drops.
//!
//! postcard (1.x, the wire format) turns `ser::Error::custom(msg)` and
//! `de::Error::custom(msg)` into the bare codes `SerdeSerCustom` and
//! `SerdeDeCustom`, and no feature of it keeps `msg`. So a `Deserialize`
//! impl that says *why* it refuses ("port 0 is reserved") would reach the
//! user as "its Deserialize impl returned an error", which helps nobody.
//!
//! The message is recovered on the failure path only, so that the hot path
//! (millions of items a second) pays nothing: when postcard reports one of
//! those two codes, the same work is done again here, through a serializer
//! or deserializer whose error keeps the message:
//!
//! * encoding: [`encode_failure_message`] serializes the value again into
//!   `Walk` (`walk.rs`), a serializer that writes nothing and accepts everything
//!   postcard accepts, so the value's `Serialize` impl takes the same path
//!   and fails at the same point with the same words;
//! * decoding: [`decode_failure_message`] deserializes the same bytes again
//!   with the deserializer that failed (postcard's, or one that reads the
//!   same way and reports `postcard::Error`), wrapped (every `Deserializer`,
//!   `Visitor`, `SeqAccess`, `MapAccess`, `EnumAccess`, `VariantAccess` and
//!   `DeserializeSeed` it hands to the user's impl) so that the user's code
//!   sees an error type of ours, [`Failure`] (`wrap.rs`). postcard's code
//!   in between still speaks `postcard::Error`: a failure crossing it is
//!   parked in a `Stash` and raised again on the other side.
//!
//! Both assume that the impl fails the same way twice, which any impl that
//! depends only on the value (or the bytes) does. One that does not (it
//! consults a clock, say) gets `None`, and the caller keeps its generic
//! reason. serde's own errors raised through `custom` (`invalid_value`,
//! `invalid_length`, `unknown_variant`, a derived enum's bad variant index)
//! are recovered the same way, with serde's words.

mod walk;
mod wrap;

use std::fmt::{self, Display};

use serde::de::{self, DeserializeOwned};
use serde::ser::{self, Serialize};

use walk::Walk;
use wrap::{Stash, Wrap};

/// Why `value` fails to serialize, in its `Serialize` impl's own words:
/// the message it gave `ser::Error::custom`, or `None` if serializing it
/// again does not fail that way.
#[cold]
pub(crate) fn encode_failure_message<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    match value.serialize(Walk) {
        Err(Failure::Custom(message)) => Some(message),
        _ => None,
    }
}

/// Why the bytes under `inner` fail to deserialize as a `T`, in its
/// `Deserialize` impl's own words (or serde's, for the errors serde raises
/// through `custom`): `None` if decoding them again does not fail that way.
#[cold]
pub(crate) fn decode_failure_message<'de, T, D>(inner: D) -> Option<String>
where
    T: DeserializeOwned,
    D: de::Deserializer<'de>,
{
    let stash = Stash::default();
    let wrapped = Wrap {
        inner,
        stash: &stash,
    };
    match T::deserialize(wrapped) {
        Err(Failure::Custom(message)) => Some(message),
        _ => None,
    }
}

/// The reason for an [`Error::Encode`](crate::Error::Encode) when postcard
/// fails to encode `value`: the value's own message when its `Serialize`
/// impl gave one, else what `why` says about postcard's error.
#[cold]
pub(crate) fn encode_reason<T: Serialize + ?Sized>(
    error: &postcard::Error,
    value: &T,
    why: impl FnOnce(&postcard::Error) -> String,
) -> String {
    if let postcard::Error::SerdeSerCustom = error {
        if let Some(message) = encode_failure_message(value) {
            return format!("its Serialize impl returned an error: {message}");
        }
    }
    why(error)
}

/// The reason for an [`Error::Decode`](crate::Error::Decode) when a `T`
/// fails to decode from the bytes under `inner` (a deserializer that
/// reports `postcard::Error`, at the start of the value): the
/// `Deserialize` impl's own message when it gave one, else what `why` says
/// about the error.
#[cold]
pub(crate) fn decode_reason<'de, T, D>(
    error: &postcard::Error,
    inner: D,
    why: impl FnOnce(&postcard::Error) -> String,
) -> String
where
    T: DeserializeOwned,
    D: de::Deserializer<'de>,
{
    if let postcard::Error::SerdeDeCustom = error {
        if let Some(message) = decode_failure_message::<T, D>(inner) {
            return format!("its Deserialize impl returned an error: {message}");
        }
    }
    why(error)
}

/// The error the user's serde impls see here.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The message given to `custom`.
    Custom(String),
    /// Anything else: the serializer refused (as postcard would), or
    /// postcard's deserializer failed on its own account.
    Wire(String),
}

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Custom(message) | Failure::Wire(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Failure {}

impl ser::Error for Failure {
    fn custom<T: Display>(message: T) -> Self {
        Failure::Custom(message.to_string())
    }
}

impl de::Error for Failure {
    fn custom<T: Display>(message: T) -> Self {
        Failure::Custom(message.to_string())
    }
}

#[cfg(test)]
mod tests;
