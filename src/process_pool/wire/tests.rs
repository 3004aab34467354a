//! The wire's own tests: frames, messages, arguments and blocks.
use super::*;
use proptest::prelude::*;

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u128>(),
            any::<(u64, u64)>(),
            any::<u64>(),
            any::<Option<u64>>(),
            any::<u32>(),
            any::<(i32, Option<i32>)>()
        )
            .prop_map(
                |(version, token, exe, probe, initializer, max_frame, (region_fd, arena_fd))| {
                    Message::Hello {
                        version,
                        token,
                        exe,
                        probe,
                        initializer,
                        max_frame,
                        region_fd,
                        arena_fd,
                    }
                }
            ),
        (any::<u32>(), any::<u128>(), any::<u32>()).prop_map(|(version, token, pid)| {
            Message::Ready {
                version,
                token,
                pid,
            }
        }),
        ".*".prop_map(|reason| Message::InitFailed { reason }),
        Just(Message::Initialized),
        (any::<u64>(), any::<u64>(), any::<u32>(), any::<u8>()).prop_map(
            |(call, func, count, slot)| Message::Task {
                call,
                func,
                count,
                slot
            }
        ),
        (any::<u8>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
            |(slot, count, failed, elapsed_nanos)| Message::Done {
                slot,
                count,
                failed,
                elapsed_nanos
            }
        ),
        (any::<u8>(), any::<u32>()).prop_map(|(slot, count)| Message::Partial { slot, count }),
        any::<u8>().prop_map(|slot| Message::Skipped { slot }),
        any::<u32>().prop_map(|count| Message::Descriptors { count }),
        (any::<(u64, u64, u32, u8)>(), any::<(u64, u64)>()).prop_map(
            |((call, func, count, slot), (at, len))| Message::TaskShared {
                call,
                func,
                count,
                slot,
                at,
                len
            }
        ),
        (any::<u8>(), any::<u32>(), any::<u32>())
            .prop_map(|(slot, count, size)| Message::PartialValues { slot, count, size }),
        (any::<u8>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
            |(slot, count, size, elapsed_nanos)| Message::Values {
                slot,
                count,
                size,
                elapsed_nanos
            }
        ),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(message in message(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut wire = Vec::new();
        write_frame(&mut wire, &message, &payload, DEFAULT_MAX_FRAME, &mut Vec::new()).unwrap();
        let frame = read_frame(&mut wire.as_slice(), DEFAULT_MAX_FRAME).unwrap();
        prop_assert_eq!(frame, Frame { message, payload });
    }

    #[test]
    fn random_bytes_give_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read_frame(&mut bytes.as_slice(), 1024);
        if let Ok(block) = Block::from_payload(&bytes, bytes.len() / 8) {
            let _ = block.none_failed(block.len() + 1);
            let mut ends = Vec::new();
            if block.append_value_ends(block.len(), 0, &mut ends) {
                // Whatever they were, they rise within the data.
                prop_assert!(ends.windows(2).all(|w| w[0] <= w[1]));
                prop_assert!(ends.last().map_or(true, |&e| e as usize <= bytes.len()));
            }
            for index in 0..block.len() {
                let _ = block.entry(index);
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error(message in message(), cut in 1usize..64) {
        let mut wire = Vec::new();
        write_frame(&mut wire, &message, b"payload", DEFAULT_MAX_FRAME, &mut Vec::new()).unwrap();
        let cut = cut.min(wire.len() - 1);
        let short = &wire[..wire.len() - cut];
        let is_truncated = matches!(read_frame(&mut &short[..], DEFAULT_MAX_FRAME), Err(WireError::Truncated { .. }));
        prop_assert!(is_truncated);
    }

    #[test]
    fn arguments_and_blocks_round_trip(
        values in proptest::collection::vec(any::<(u64, String)>(), 0..20),
        failed in proptest::collection::vec(any::<bool>(), 20),
    ) {
        let mut payload = Vec::new();
        for value in &values {
            push_value(&mut payload, value).unwrap();
        }
        let mut de = Deserializer::new(&payload);
        for value in &values {
            let back: (u64, String) = serde::Deserialize::deserialize(&mut de).unwrap();
            prop_assert_eq!(&back, value);
        }
        // The same values as outcomes, some of them failures.
        let mut data = vec![0u8; 4096];
        let mut ends = Vec::new();
        let mut pos = 0;
        for (value, &fail) in values.iter().zip(&failed) {
            if fail {
                data[pos] = outcome::PANICKED;
                pos += 1;
                ends.push(pos as u32 | FAILED);
            } else {
                pos = encode(value, Bounded { area: &mut data, pos }).unwrap().pos;
                ends.push(pos as u32);
            }
        }
        let block = Block::from_slot(&ends, &data, values.len()).unwrap();
        let mut sent = Vec::new();
        block.write_payload(&mut sent);
        let again = Block::from_payload(&sent, values.len()).unwrap();
        // Both forms say alike whether the first `n` hold a failure.
        for n in 0..=values.len() {
            let any = failed[..n].iter().any(|&f| f);
            prop_assert_eq!(block.none_failed(n), !any);
            prop_assert_eq!(again.none_failed(n), !any);
            // Strings of every length: uniform only by chance of the
            // values' sizes, and never with a failure among them.
            for size in [9, 10, 12] {
                let uniform = n > 0 && !any && ends[..n].iter().zip(1..).all(|(&e, i)| e as usize == i * size);
                prop_assert_eq!(block.uniform_values(n, size), uniform);
                prop_assert_eq!(again.uniform_values(n, size), uniform);
            }
            // Without a failure, the ends come out moved to a new start.
            let mut moved = vec![7];
            prop_assert_eq!(again.append_value_ends(n, 100, &mut moved), !any);
            if !any {
                let expected: Vec<u32> = std::iter::once(7).chain(ends[..n].iter().map(|&e| e + 100)).collect();
                prop_assert_eq!(&moved, &expected);
            } else {
                prop_assert_eq!(&moved, &vec![7]);
            }
        }
        for (index, (value, &fail)) in values.iter().zip(&failed).enumerate() {
            for block in [block, again] {
                match block.entry(index).unwrap() {
                    Entry::Value(bytes) => {
                        prop_assert!(!fail);
                        prop_assert_eq!(&from_bytes::<(u64, String)>(bytes).unwrap(), value);
                    }
                    Entry::Failed(tag, _) => {
                        prop_assert!(fail);
                        prop_assert_eq!(tag, outcome::PANICKED);
                    }
                }
            }
        }
    }
}

/// An outcome as the worker writes it: a value's bytes, or a failure's
/// tag and detail.
type Outcome = Result<Vec<u8>, (u8, Vec<u8>)>;

fn outcome_strategy() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Ok),
        1 => (1u8..=3, proptest::collection::vec(any::<u8>(), 0..24)).prop_map(Err),
    ]
}

proptest! {
    /// The same outcomes read from a slot and from the `Partial` payload
    /// the worker makes of it give the same entries, which are the
    /// outcomes; `values` gives their bytes when none of them failed,
    /// and nothing when the last one did (a failure before the last is
    /// the caller's to know: the worker counts them in `Done`).
    #[test]
    fn slot_and_payload_blocks_agree(
        outcomes in proptest::collection::vec(outcome_strategy(), 0..40),
        spare in 0usize..64,
    ) {
        let (mut ends, mut data) = (Vec::new(), Vec::new());
        for outcome in &outcomes {
            match outcome {
                Ok(value) => {
                    data.extend_from_slice(value);
                    ends.push(data.len() as u32);
                }
                Err((tag, detail)) => {
                    data.push(*tag);
                    data.extend_from_slice(detail);
                    ends.push(data.len() as u32 | FAILED);
                }
            }
        }
        let used = data.len();
        // A slot is larger than what its outcomes fill.
        data.resize(used + spare, 0xee);
        ends.resize(outcomes.len() + spare, 0xffff_ffff);
        let n = outcomes.len();
        let slot = Block::from_slot(&ends, &data, n).unwrap();
        prop_assert!(Block::from_slot(&ends, &data, ends.len() + 1).is_err());
        let mut payload = Vec::new();
        slot.write_payload(&mut payload);
        prop_assert_eq!(payload.len(), 4 * n + used);
        let sent = Block::from_payload(&payload, n).unwrap();
        prop_assert!(Block::from_payload(&payload, payload.len() / 4 + 1).is_err());
        for (index, outcome) in outcomes.iter().enumerate() {
            let want = match outcome {
                Ok(value) => Entry::Value(value),
                Err((tag, detail)) => Entry::Failed(*tag, detail),
            };
            prop_assert_eq!(slot.entry(index).unwrap(), want);
            prop_assert_eq!(sent.entry(index).unwrap(), want);
        }
        for count in 0..=n + 1 {
            for block in [slot, sent] {
                let values = block.values(count);
                if count == 0 || count > n {
                    prop_assert_eq!(values, None);
                } else if outcomes[..count].iter().all(Result::is_ok) {
                    let joined: Vec<u8> = outcomes[..count]
                        .iter()
                        .flat_map(|o| o.as_ref().map_or(&[][..], Vec::as_slice).iter().copied())
                        .collect();
                    prop_assert_eq!(values, Some(&joined[..]));
                } else if outcomes[count - 1].is_err() {
                    prop_assert_eq!(values, None);
                }
            }
        }
    }
}

#[test]
fn a_huge_length_prefix_is_refused_before_allocating() {
    let wire = u32::MAX.to_le_bytes();
    assert!(matches!(
        read_frame(&mut &wire[..], 1024),
        Err(WireError::TooLarge { .. })
    ));
}

/// Found by the `frame` fuzz target (`fuzz/seeds/frame/
/// crash-reused-buffer-grew-past-frame`): a buffer left by a smaller
/// frame was grown by doubling, past what the next frame declares and
/// past the limit.
#[test]
fn a_reused_buffer_never_grows_past_the_frame() {
    let task = Message::Task {
        call: 1,
        func: 2,
        count: 1,
        slot: 0,
    };
    let mut wire = Vec::new();
    for len in [600, 900] {
        write_frame(&mut wire, &task, &vec![7; len], 1000, &mut Vec::new()).unwrap();
    }
    let mut reader = wire.as_slice();
    let mut payload = Vec::new();
    for len in [600, 900] {
        read_frame_into(&mut reader, 1000, &mut payload).unwrap();
        assert_eq!(payload.len(), len);
        assert!(payload.capacity() <= 1000, "{} bytes", payload.capacity());
    }
}

#[test]
fn end_of_file_between_frames_is_closed() {
    assert!(matches!(
        read_frame(&mut &[][..], 1024),
        Err(WireError::Closed)
    ));
}

#[test]
fn uniform_values_are_plain_numbers_one_after_another() {
    let payload = |ends: &[u32], data: usize| -> Vec<u8> {
        let mut bytes: Vec<u8> = ends.iter().flat_map(|e| e.to_le_bytes()).collect();
        bytes.resize(bytes.len() + data, 0);
        bytes
    };
    let good = payload(&[8, 16, 24], 24);
    let block = Block::from_payload(&good, 3).unwrap();
    assert!(block.uniform_values(3, 8));
    assert!(block.uniform_values(2, 8));
    assert!(!block.uniform_values(3, 4));
    assert!(!block.uniform_values(0, 8), "nothing to take");
    assert!(!block.uniform_values(4, 8), "more than the block");
    let uneven = payload(&[8, 17, 24], 24);
    assert!(!Block::from_payload(&uneven, 3)
        .unwrap()
        .uniform_values(3, 8));
    let failed = payload(&[8, 16 | FAILED, 24], 24);
    assert!(!Block::from_payload(&failed, 3)
        .unwrap()
        .uniform_values(3, 8));
    let short = payload(&[8, 16, 24], 23);
    assert!(!Block::from_payload(&short, 3).unwrap().uniform_values(3, 8));
    // From a slot, past its first outcomes.
    let ends = [3, 11, 19];
    let data = [0u8; 19];
    let block = Block::from_slot_at(&ends, &data, 1, 2).unwrap();
    assert!(block.uniform_values(2, 8));
}

proptest! {
    /// A slot whose values' ends were left implied (its implied word set)
    /// reads exactly as the same slot with those ends written, through
    /// every method of `Block`; one whose data cannot hold them is refused.
    #[test]
    fn implied_ends_read_as_written_ones(
        size in 1usize..17,
        n in 0usize..40,
        first in 0usize..40,
        data in proptest::collection::vec(any::<u8>(), 0..700),
    ) {
        use crate::process_pool::sys::region::Slot;
        let first = first.min(n);
        let count = n - first;
        let written: Vec<u32> = (1..=n).map(|i| (i * size) as u32).collect();
        let as_written = Slot { ends: &written, data: &data, implied: 0 };
        let as_implied = Slot { implied: size as u64, ..as_written };
        let implied = Block::from_view(as_implied, first, count);
        prop_assert_eq!(implied.is_ok(), n * size <= data.len());
        let (Ok(implied), Ok(plain)) = (implied, Block::from_view(as_written, first, count)) else {
            return Ok(());
        };
        prop_assert_eq!(implied.len(), plain.len());
        for i in 0..count {
            prop_assert_eq!(implied.entry(i).ok(), plain.entry(i).ok());
        }
        for k in 0..=count {
            prop_assert_eq!(implied.none_failed(k), plain.none_failed(k));
            prop_assert_eq!(implied.uniform_values(k, size), plain.uniform_values(k, size));
            prop_assert_eq!(implied.uniform_values(k, size + 1), plain.uniform_values(k, size + 1));
            prop_assert_eq!(implied.values(k), plain.values(k));
            let (mut a, mut b) = (Vec::new(), Vec::new());
            prop_assert_eq!(
                implied.append_value_ends(k, 7, &mut a),
                plain.append_value_ends(k, 7, &mut b)
            );
            prop_assert_eq!(a, b);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        implied.write_payload(&mut a);
        plain.write_payload(&mut b);
        prop_assert_eq!(a, b);
        // More outcomes than the slot's ends could hold: refused.
        prop_assert!(Block::from_view(as_implied, first, count + written.len() + 1).is_err());
    }

    /// A `Values` payload (an MPI rank's reply of plain values) reads as
    /// a `Partial` payload of the same values with their ends written; a
    /// payload that is not exactly `count` values of `size` bytes, or a
    /// size of zero, is refused.
    #[test]
    fn a_values_payload_reads_as_the_same_values_with_ends(
        size in 0u32..17,
        count in 0usize..40,
        data in proptest::collection::vec(any::<u8>(), 0..700),
    ) {
        let exact = size > 0 && count * size as usize == data.len();
        let values = Block::from_values(&data, count, size);
        prop_assert_eq!(values.is_ok(), exact);
        let Ok(values) = values else {
            return Ok(());
        };
        let mut payload: Vec<u8> = (1..=count as u32).flat_map(|i| (i * size).to_le_bytes()).collect();
        payload.extend_from_slice(&data);
        let plain = Block::from_payload(&payload, count).unwrap();
        prop_assert_eq!(values.len(), count);
        for i in 0..count {
            prop_assert_eq!(values.entry(i).ok(), plain.entry(i).ok());
        }
        prop_assert_eq!(values.values(count), plain.values(count));
    }
}

#[test]
fn a_values_payload_that_would_reach_the_failure_bit_is_refused() {
    // 2^31 bytes of values would set the bit that marks a failure's end.
    let data = [0u8; 16];
    assert!(Block::from_values(&data, 1 << 28, 8).is_err());
    assert!(Block::from_values(&data, usize::MAX, 1).is_err());
    assert!(Block::from_values(&data, 2, 8).is_ok());
}
