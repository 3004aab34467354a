//! What rank 0 and the worker ranks say to each other: MPI tags, the
//! handshake, and the proof that both run the same build.
//!
//! ```text
//! rank 0 → r   HELLO    prefix ‖ postcard(Hello)
//! r → rank 0   READY    prefix ‖ postcard(Ready)      (prefix alone if r refuses)
//! rank 0 → r   LANE+l   a Task frame (the process pool's wire) ‖ where its items end:
//!                       nothing (direct mode), a u32 LE end per item, or one u32 LE,
//!                       the size every item takes (up to DEPTH tasks out per lane;
//!                       the rank queues them)
//! r → rank 0   LANE+l   frames: (Partial | PartialValues)*, then Done whose payload is
//!                       the last outcomes' block, or Values: the last values alone
//!                       (one reply per task, in the order of the lane's tasks)
//! rank 0 → r   STOP     (empty)
//! either way   MORE     a piece of the message that follows (any over 1 GiB)
//! r → rank 0   STOPPED  (empty), then r finalises MPI and exits 0
//! ```
//!
//! The prefix is fixed-layout, so that ranks of different builds still
//! understand each other well enough to refuse: a magic, the protocol
//! version, a hash of the executable file, and the offset of a known
//! function. Nodes do not share inodes, so the file's bytes are compared,
//! not its identity.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Rank 0's greeting.
pub(crate) const HELLO: i32 = 1;
/// A worker rank's answer.
pub(crate) const READY: i32 = 2;
/// Rank 0: stop.
pub(crate) const STOP: i32 = 3;
/// A worker rank: stopping.
pub(crate) const STOPPED: i32 = 4;
/// Every piece but the last of a message sent in pieces (one over 1 GiB;
/// see `sys::Mpi::post`).
pub(crate) const MORE: i32 = 5;
/// The tag of lane 0; lane `l` uses `LANE + l`.
pub(crate) const LANE: i32 = 16;
/// How many tasks rank 0 keeps out on one lane: the one the rank runs and
/// the next, which the rank queues and starts the moment the first ends,
/// so that it never idles for a round trip between tasks. The lane's
/// replies come in the order of its tasks.
pub(crate) const DEPTH: usize = 2;
/// The most lanes (local workers) one rank may offer: MPI guarantees tags
/// up to 32767.
pub(crate) const MAX_LANES: usize = 32_000;

/// The protocol's version; both sides must agree exactly (4: replies of
/// plain values as `wire::Message::Values`).
pub(crate) const VERSION: u32 = 4;
const MAGIC: [u8; 4] = *b"CFMP";
/// The prefix's length.
pub(crate) const PREFIX: usize = 24;

/// How a worker rank runs its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Mode {
    /// On its own thread: the lowest latency; a crash ends the job.
    Direct,
    /// On a local process pool of `workers` (0: the rank's share of its
    /// node's CPUs): a crash costs one item.
    Local { workers: u32 },
}

/// Rank 0's greeting, after the prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) mode: Mode,
    /// The node rank 0 runs on: a rank on the same node leaves it a share.
    pub(crate) root_node: String,
    /// The initializer's offset, if any.
    pub(crate) initializer: Option<u64>,
    pub(crate) max_tasks_per_child: Option<u64>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_frame: u32,
}

/// A worker rank's answer, after the prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ready {
    /// Its lanes and who it is, or why it cannot serve.
    pub(crate) outcome: Result<RankInfo, String>,
}

/// A worker rank that serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RankInfo {
    /// How many tasks it runs at once (its local workers; 1 if direct).
    pub(crate) lanes: u32,
    pub(crate) pid: u32,
    pub(crate) node: String,
}

/// This build's prefix.
pub(crate) fn prefix(exe_hash: u64, probe: u64) -> [u8; PREFIX] {
    let mut out = [0u8; PREFIX];
    out[..4].copy_from_slice(&MAGIC);
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&exe_hash.to_le_bytes());
    out[16..24].copy_from_slice(&probe.to_le_bytes());
    out
}

/// Why `theirs` is not `ours`, in words for rank 0's error.
pub(crate) fn mismatch(ours: &[u8; PREFIX], theirs: &[u8]) -> Option<String> {
    if theirs.len() < PREFIX || theirs[..4] != MAGIC {
        return Some(String::from(
            "it does not speak this crate's MPI protocol (another program, or a build too old)",
        ));
    }
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    let version = u32::from_le_bytes([theirs[4], theirs[5], theirs[6], theirs[7]]);
    if version != VERSION {
        return Some(format!(
            "it speaks protocol version {version}, this build {VERSION}"
        ));
    }
    if word(theirs, 8) != word(ours, 8) {
        return Some(format!(
            "it runs a different build: its executable hashes to {:016x}, this one's to {:016x}",
            word(theirs, 8),
            word(ours, 8)
        ));
    }
    if word(theirs, 16) != word(ours, 16) {
        return Some(String::from(
            "its code is laid out differently (the probe function's offset differs)",
        ));
    }
    None
}

/// A hash of this process's executable file (`/proc/self/exe`): 64 bits
/// of a multiply-rotate mix over its words, enough to tell two builds
/// apart (not a defence against a forger, who could run anything anyway).
pub(crate) fn exe_hash() -> Result<u64, String> {
    let mut file = std::fs::File::open("/proc/self/exe")
        .map_err(|e| format!("cannot read its own executable: {e}"))?;
    let mut hash: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut total: u64 = 0;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read its own executable: {e}")),
            }
        }
        if filled == 0 {
            break;
        }
        total += filled as u64;
        buffer[filled..].iter_mut().take(7).for_each(|b| *b = 0);
        for word in buffer[..filled.div_ceil(8) * 8].chunks_exact(8) {
            let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            hash = (hash ^ w)
                .wrapping_mul(0xff51_afd7_ed55_8ccd)
                .rotate_left(29);
        }
        if filled < buffer.len() {
            break;
        }
    }
    Ok((hash ^ total).wrapping_mul(0xc4ce_b9fe_1a85_ec53))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_itself_and_no_other_build() {
        let ours = prefix(1, 2);
        assert_eq!(mismatch(&ours, &ours), None);
        let why = mismatch(&ours, &prefix(3, 2)).expect("another hash is refused");
        assert!(why.contains("different build"), "{why}");
        assert!(mismatch(&ours, &prefix(1, 4)).is_some());
        assert!(mismatch(&ours, b"short").is_some());
        let hash = exe_hash().expect("the test binary reads");
        assert_eq!(hash, exe_hash().expect("again"), "the hash is stable");
    }
}
