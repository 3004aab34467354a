//! A region: one sealed anonymous memfd, mapped shared, that starts with a
//! robust mutex and a small header, and that a handle ([`Lock`](super::Lock),
//! [`Value`](super::Value), [`Array`](super::Array), [`Queue`](super::Queue))
//! is a typed view of.
//!
//! ```text
//! 0    robust process-shared pthread mutex (MUTEX_SPACE bytes)
//! 64   magic:u64 ‖ kind:u64 ‖ p1:u64 ‖ p2:u64 ‖ p3:u64   (the header)
//! 128  the kind's body (BODY)
//! ```
//!
//! The header is written once by the creator, before the region is
//! shared. A process that receives a region reads it once, checks it
//! against the memfd's (sealed) size and the kind it expects, and keeps
//! its own copy of the parameters: another process that scribbles over
//! the header later cannot make this one read out of bounds.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Deserializer, Serializer};

use super::sys::{self, LockFailure, Locked, Mapping, Wait};
use super::transfer;
use crate::Error;

/// Where a region's body starts.
pub(crate) const BODY: usize = 128;

const MAGIC: u64 = u64::from_le_bytes(*b"cf-mp-v1");
const MAGIC_AT: usize = sys::MUTEX_SPACE;
const KIND_AT: usize = MAGIC_AT + 8;
const PARAMS_AT: usize = KIND_AT + 8;

/// What a region holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Kind {
    Lock = 1,
    Value = 2,
    Array = 3,
    Queue = 4,
}

impl Kind {
    /// The handle's name, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Lock => "Lock",
            Kind::Value => "Value",
            Kind::Array => "Array",
            Kind::Queue => "Queue",
        }
    }
}

/// A mapped region and its descriptor (kept to send the region on).
#[derive(Debug)]
pub(crate) struct Region {
    fd: OwnedFd,
    map: Mapping,
    kind: Kind,
    params: [u64; 3],
}

fn os(what: &str, e: io::Error) -> Error {
    Error::Os {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

impl Region {
    /// A new zero-filled region of `kind` with `body` bytes of body.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the size overflows; [`Error::Os`] if
    /// the memfd cannot be created or mapped.
    pub(crate) fn create(kind: Kind, params: [u64; 3], body: usize) -> Result<Region, Error> {
        let len = BODY
            .checked_add(body)
            .ok_or_else(|| Error::InvalidArgument {
                reason: format!("a {} of {body} bytes does not fit in memory", kind.name()),
            })?;
        let what = || format!("creating the shared memory of a {}", kind.name());
        let fd = sys::sealed_memfd(len).map_err(|e| os(&what(), e))?;
        let mut map = Mapping::new(&fd, len).map_err(|e| os(&what(), e))?;
        map.init_mutex().map_err(|e| os(&what(), e))?;
        // ORDERING: written before the region is shared with anyone; the
        // descriptor's passage to another process orders it before any
        // read there.
        map.atomic_u64(MAGIC_AT).store(MAGIC, Ordering::Relaxed);
        map.atomic_u64(KIND_AT)
            .store(kind as u64, Ordering::Relaxed);
        for (i, p) in params.iter().enumerate() {
            map.atomic_u64(PARAMS_AT + 8 * i)
                .store(*p, Ordering::Relaxed);
        }
        Ok(Region {
            fd,
            map,
            kind,
            params,
        })
    }

    /// Maps a received region, checking that it is a sealed region of
    /// `kind` whose body, as `body_len` computes it from the parameters,
    /// fits.
    fn open(
        fd: OwnedFd,
        kind: Kind,
        body_len: fn([u64; 3]) -> Option<usize>,
    ) -> Result<Region, String> {
        let name = kind.name();
        let bad = |why: String| format!("the received {name} is not usable: {why}");
        let len = sys::sealed_size(&fd).map_err(|e| bad(e.to_string()))?;
        if len < BODY {
            return Err(bad(format!("its region has {len} bytes")));
        }
        let map = Mapping::new(&fd, len).map_err(|e| bad(e.to_string()))?;
        // ORDERING: see `create`.
        let magic = map.atomic_u64(MAGIC_AT).load(Ordering::Relaxed);
        let found = map.atomic_u64(KIND_AT).load(Ordering::Relaxed);
        if magic != MAGIC || found != kind as u64 {
            return Err(bad(String::from("it is not a region of that kind")));
        }
        let mut params = [0; 3];
        for (i, p) in params.iter_mut().enumerate() {
            *p = map.atomic_u64(PARAMS_AT + 8 * i).load(Ordering::Relaxed);
        }
        match body_len(params).and_then(|body| body.checked_add(BODY)) {
            Some(needed) if needed <= len => Ok(Region {
                fd,
                map,
                kind,
                params,
            }),
            _ => Err(bad(format!(
                "its header {params:?} does not match its {len} bytes"
            ))),
        }
    }

    /// The parameters the creator wrote (this process's copy).
    pub(crate) fn params(&self) -> [u64; 3] {
        self.params
    }

    /// The mapping (for the atomics of a kind's body).
    pub(crate) fn map(&self) -> &Mapping {
        &self.map
    }

    /// Takes the region's mutex.
    pub(crate) fn lock(&self, how: Wait) -> Result<Locked<'_>, LockFailure> {
        self.map.lock(how)
    }

    /// Serializes the region as the index of its descriptor in the
    /// transfer table.
    pub(crate) fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = transfer::put(&self.fd, self.kind.name()).map_err(serde::ser::Error::custom)?;
        serializer.serialize_u32(index)
    }

    /// The inverse of [`serialize`](Self::serialize), for a region of
    /// `kind`.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
        body_len: fn([u64; 3]) -> Option<usize>,
    ) -> Result<Region, D::Error> {
        let index = u32::deserialize(deserializer)?;
        let fd = transfer::take(index, kind.name()).map_err(serde::de::Error::custom)?;
        Region::open(fd, kind, body_len)
            .map_err(|why| serde::de::Error::custom(transfer::note(why)))
    }
}

/// Rounds `offset` up to a multiple of `align` (a power of two).
pub(crate) fn align_up(offset: usize, align: usize) -> Option<usize> {
    offset.checked_add(align - 1).map(|o| o & !(align - 1))
}

/// The largest alignment a `Value` or `Array` element may ask for: the
/// page, which the mapping's start is aligned to.
pub(crate) const MAX_ALIGN: usize = 4096;

/// Where the data of a region for values of type `T` starts (after the
/// header, aligned for `T`), for a `Value` or an `Array`.
pub(crate) fn data_offset<T>() -> Result<usize, crate::Error> {
    use crate::Error;
    if std::mem::size_of::<T>() == 0 {
        return Err(Error::InvalidArgument {
            reason: String::from("a zero-sized type holds nothing to share"),
        });
    }
    let align = std::mem::align_of::<T>();
    if align > MAX_ALIGN {
        return Err(Error::InvalidArgument {
            reason: format!("an alignment of {align} is over the {MAX_ALIGN} shared memory offers"),
        });
    }
    align_up(BODY, align).ok_or_else(|| Error::InvalidArgument {
        reason: String::from("alignment overflow"),
    })
}
