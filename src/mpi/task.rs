//! A task as a worker rank reads it from rank 0's message: the process
//! pool's `Task` frame, then where its items end (see `protocol`).

use super::protocol::LANE;
use crate::process_pool::sys;
use crate::process_pool::wire::{self, Bounds, Message};

/// A task as rank 0 sent it: its frame, then its items' ends.
#[derive(Debug)]
pub(super) struct Task {
    pub(super) lane: usize,
    pub(super) call: u64,
    pub(super) func: u64,
    pub(super) count: u32,
    pub(super) slot: u8,
    /// Where each item ends in the payload, for a local pool (a rank in
    /// direct mode is sent none: it has no use for them).
    pub(super) bounds: Option<Bounds>,
}

/// Reads a task: its frame (the payload into `payload`), then what follows
/// it, the items' ends: nothing (direct mode), 4 bytes for each item (its
/// end), or 4 bytes for them all (the size they share). A task of one item
/// can only be read the second way, and both ways mean the same for it.
pub(super) fn parse_task(
    tag: i32,
    bytes: &[u8],
    max: u32,
    payload: &mut Vec<u8>,
) -> Result<Task, String> {
    let lane = usize::try_from(tag - LANE).map_err(|_| format!("rank 0 sent tag {tag}"))?;
    let mut rest = bytes;
    let message = wire::read_frame_into(&mut rest, max, payload)
        .map_err(|e| format!("rank 0 sent a bad task: {e}"))?;
    let Message::Task {
        call,
        func,
        count,
        slot,
    } = message
    else {
        return Err(format!("rank 0 sent {message:?} for a task"));
    };
    if usize::from(slot) >= sys::region::SLOTS {
        return Err(format!("rank 0 sent a task for slot {slot}"));
    }
    let word = |w: &[u8]| u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
    let items = count as usize;
    let bounds = match rest.len() {
        0 => (items == 0).then(|| Bounds::uniform(0, 0)),
        4 => {
            let size = word(rest);
            let fits = u64::from(size) * u64::from(count) <= payload.len() as u64;
            if !fits {
                return Err(format!(
                    "rank 0 sent {count} items of {size} bytes in {} bytes",
                    payload.len()
                ));
            }
            Some(Bounds::uniform(size, items))
        }
        n if n == 4 * items => Some(Bounds::listed(rest.chunks_exact(4).map(word).collect())),
        n => {
            return Err(format!(
                "rank 0 sent {n} bytes of item ends for {count} items"
            ))
        }
    };
    Ok(Task {
        lane,
        call,
        func,
        count,
        slot,
        bounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rank 0's message of a task of `count` items with `payload`, then
    /// `trailer`.
    fn message(count: u32, payload: &[u8], trailer: &[u8]) -> Vec<u8> {
        let task = Message::Task {
            call: 1,
            func: 2,
            count,
            slot: 1,
        };
        let mut bytes = Vec::new();
        wire::encode_frame(&task, payload, u32::MAX, &mut bytes).unwrap();
        bytes.extend_from_slice(trailer);
        bytes
    }

    fn ends(bounds: &Bounds) -> Vec<u32> {
        (0..bounds.len()).map(|i| bounds.end(i)).collect()
    }

    #[test]
    fn item_ends_come_as_nothing_a_list_or_one_size() {
        let mut payload = Vec::new();
        let parse =
            |bytes: &[u8], payload: &mut Vec<u8>| parse_task(LANE + 3, bytes, 1 << 20, payload);

        let task = parse(&message(3, &[0; 24], &[]), &mut payload).unwrap();
        assert_eq!((task.lane, task.count, task.slot), (3, 3, 1));
        assert!(task.bounds.is_none(), "direct mode: no ends");
        assert_eq!(payload, [0; 24]);

        let listed: Vec<u8> = [5u32, 9, 24].iter().flat_map(|e| e.to_le_bytes()).collect();
        let task = parse(&message(3, &[0; 24], &listed), &mut payload).unwrap();
        assert_eq!(ends(&task.bounds.unwrap()), [5, 9, 24]);

        let task = parse(&message(3, &[0; 24], &8u32.to_le_bytes()), &mut payload).unwrap();
        assert_eq!(ends(&task.bounds.unwrap()), [8, 16, 24], "one size for all");

        let task = parse(&message(1, &[0; 24], &24u32.to_le_bytes()), &mut payload).unwrap();
        assert_eq!(
            ends(&task.bounds.unwrap()),
            [24],
            "one item: both ways the same"
        );

        let task = parse(&message(0, &[], &[]), &mut payload).unwrap();
        assert_eq!(
            task.bounds.map(|b| b.len()),
            Some(0),
            "no items, no ends needed"
        );
    }

    #[test]
    fn ends_that_do_not_fit_the_task_are_refused() {
        let mut payload = Vec::new();
        let parse = |bytes: &[u8], payload: &mut Vec<u8>| parse_task(LANE, bytes, 1 << 20, payload);
        // Items of 9 bytes: 27 bytes, in a payload of 24.
        let err = parse(&message(3, &[0; 24], &9u32.to_le_bytes()), &mut payload).unwrap_err();
        assert!(err.contains("3 items of 9 bytes"), "{err}");
        // Neither one size nor an end per item.
        let err = parse(&message(3, &[0; 24], &[0; 8]), &mut payload).unwrap_err();
        assert!(err.contains("8 bytes of item ends for 3 items"), "{err}");
        // A huge size: no overflow.
        let err = parse(
            &message(u32::MAX, &[0; 24], &u32::MAX.to_le_bytes()),
            &mut payload,
        );
        assert!(err.is_err());
        // Not a task, or a tag below the lanes.
        let stop = {
            let mut bytes = Vec::new();
            wire::encode_frame(&Message::Skipped { slot: 0 }, &[], u32::MAX, &mut bytes).unwrap();
            bytes
        };
        assert!(parse(&stop, &mut payload).is_err());
        assert!(parse_task(LANE - 1, &message(0, &[], &[]), 1 << 20, &mut payload).is_err());
    }
}
