//! Loss, duplicate and reorder accounting from the sequence numbers in payloads.
//!
//! A *stream* is what one receiver (a subscriber, or a whole shared-subscription group)
//! gets from one publisher. [`StreamTracker`] keeps a bitmap of the sequence numbers
//! seen, so duplicates are exact and the loss is `expected - unique` once the publisher
//! says how many it sent. Trackers of the members of a shared group are merged with
//! [`StreamTracker::merge`] before counting.

/// What one receiver has seen from one publisher.
#[derive(Debug, Clone, Default)]
pub struct StreamTracker {
    /// Bit `seq` is set once sequence number `seq` has been received.
    seen: Vec<u64>,
    unique: u64,
    duplicates: u64,
    /// Messages that arrived with a lower sequence number than one already seen.
    reordered: u64,
    /// Highest sequence number + 1 seen, 0 when nothing arrived.
    next_expected: u64,
}

/// The outcome for one stream or for a sum of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Messages the receiver should have got.
    pub expected: u64,
    /// Distinct messages received.
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl Tally {
    /// Adds another tally (streams of the same QoS, say).
    pub fn add(&mut self, other: &Tally) {
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
    }
}

impl StreamTracker {
    /// Records one received sequence number. Returns false for a duplicate.
    pub fn record(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            // Grow geometrically so a long run does not reallocate per 64 messages.
            let len = (word + 1).max(self.seen.len() * 2);
            self.seen.resize(len, 0);
        }
        let mask = 1u64 << bit;
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= mask;
        self.unique += 1;
        if seq < self.next_expected {
            self.reordered += 1;
        } else {
            self.next_expected = seq + 1;
        }
        true
    }

    /// Distinct sequence numbers received.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Merges the tracker of another member of the same shared group: a sequence number
    /// both saw is one duplicate more.
    pub fn merge(&mut self, other: &StreamTracker) {
        if other.seen.len() > self.seen.len() {
            self.seen.resize(other.seen.len(), 0);
        }
        let mut overlap = 0u64;
        for (mine, theirs) in self.seen.iter_mut().zip(&other.seen) {
            overlap += u64::from((*mine & theirs).count_ones());
            *mine |= theirs;
        }
        self.unique = self.unique + other.unique - overlap;
        self.duplicates += other.duplicates + overlap;
        self.reordered += other.reordered;
        self.next_expected = self.next_expected.max(other.next_expected);
    }

    /// Counts the stream against `expected` messages, or, when the publisher's count is
    /// not known (a `sub` run fed by another process), against the highest sequence
    /// number seen.
    pub fn tally(&self, expected: Option<u64>) -> Tally {
        let expected = expected.unwrap_or(self.next_expected);
        Tally {
            expected,
            received: self.unique,
            lost: expected.saturating_sub(self.unique),
            duplicated: self.duplicates,
            reordered: self.reordered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_complete() {
        let mut t = StreamTracker::default();
        for seq in 0..1000 {
            assert!(t.record(seq));
        }
        let tally = t.tally(Some(1000));
        assert_eq!(
            tally,
            Tally {
                expected: 1000,
                received: 1000,
                ..Default::default()
            }
        );
    }

    #[test]
    fn gaps_duplicates_and_reordering_are_counted() {
        let mut t = StreamTracker::default();
        // 0..10 without 3 and 7, then 3 late, 5 twice, 9 three times.
        for seq in [0, 1, 2, 4, 5, 5, 6, 8, 9, 3, 9, 9] {
            t.record(seq);
        }
        let tally = t.tally(Some(10));
        assert_eq!(tally.received, 9);
        assert_eq!(tally.lost, 1, "7 never came");
        assert_eq!(tally.duplicated, 3);
        assert_eq!(tally.reordered, 1, "3 after 9");
        // Without the publisher's count the loss is judged from the highest seen (9).
        assert_eq!(t.tally(None).expected, 10);
        // The publisher sent 12: the last two are lost as well.
        assert_eq!(t.tally(Some(12)).lost, 3);
    }

    #[test]
    fn shared_group_members_merge() {
        let (mut a, mut b) = (StreamTracker::default(), StreamTracker::default());
        for seq in (0..100).filter(|s| s % 2 == 0) {
            a.record(seq);
        }
        for seq in (0..100).filter(|s| s % 2 == 1) {
            b.record(seq);
        }
        b.record(10); // also delivered to a: a duplicate across the group
        b.record(1000); // beyond a's bitmap
        a.merge(&b);
        let tally = a.tally(Some(1001));
        assert_eq!(tally.received, 101);
        assert_eq!(tally.duplicated, 1);
        assert_eq!(tally.lost, 1001 - 101);
    }

    #[test]
    fn large_sequence_numbers_grow_the_bitmap() {
        let mut t = StreamTracker::default();
        assert!(t.record(1_000_000));
        assert!(!t.record(1_000_000));
        assert_eq!(t.tally(None).lost, 1_000_000);
    }
}
