//! Forwarded messages this broker already delivered, per sending broker, so that a batch
//! resent on a new stream (the old one broke before its answer came back) delivers only
//! what is new. The sender numbers messages per sending task (`stream_id`, `seq`) and
//! keeps the numbers when it resends; batches arrive in order, so the highest number
//! delivered is all there is to remember. Forwarding is then exactly once across stream
//! breaks, for as long as this process lives.

use std::collections::HashMap;
use std::sync::Mutex;

/// The highest sequence number delivered, per sending node and its current task.
#[derive(Debug, Default)]
pub struct DeliveredSeqs {
    last: Mutex<HashMap<u64, (u64, u64)>>,
}

impl DeliveredSeqs {
    /// Calls `deliver` for each message of a batch from `node`'s sending task
    /// `stream_id` that was not delivered before, in order, and remembers it. A new
    /// `stream_id` (the sender restarted its task) starts afresh; a `seq` of 0 is never
    /// skipped. Returns how many messages were skipped. Batches from one node are
    /// delivered one at a time, even when an old stream and its replacement overlap.
    pub fn deliver_new<T>(
        &self,
        node: u64,
        stream_id: u64,
        messages: impl IntoIterator<Item = (u64, T)>,
        mut deliver: impl FnMut(T),
    ) -> usize {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let entry = last.entry(node).or_insert((stream_id, 0));
        if entry.0 != stream_id {
            *entry = (stream_id, 0);
        }
        let mut skipped = 0;
        for (seq, message) in messages {
            if seq != 0 && seq <= entry.1 {
                skipped += 1;
                continue;
            }
            deliver(message);
            entry.1 = entry.1.max(seq);
        }
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(seqs: &DeliveredSeqs, node: u64, stream: u64, batch: &[u64]) -> (Vec<u64>, usize) {
        let mut got = Vec::new();
        let skipped =
            seqs.deliver_new(node, stream, batch.iter().map(|&s| (s, s)), |s| got.push(s));
        (got, skipped)
    }

    #[test]
    fn a_resent_batch_delivers_only_what_is_new() {
        let seqs = DeliveredSeqs::default();
        assert_eq!(deliver(&seqs, 1, 7, &[1, 2, 3]), (vec![1, 2, 3], 0));
        // The answer was lost: 2 and 3 come again with 4 (QoS 0 message 1 was not resent).
        assert_eq!(deliver(&seqs, 1, 7, &[2, 3, 4]), (vec![4], 2));
        assert_eq!(deliver(&seqs, 1, 7, &[6]), (vec![6], 0), "gaps are fine");
    }

    #[test]
    fn numbers_count_per_node_and_sending_task() {
        let seqs = DeliveredSeqs::default();
        assert_eq!(deliver(&seqs, 1, 7, &[1, 2]).0, vec![1, 2]);
        assert_eq!(deliver(&seqs, 2, 9, &[1, 2]).0, vec![1, 2], "another node");
        assert_eq!(
            deliver(&seqs, 1, 8, &[1]).0,
            vec![1],
            "a new sending task starts afresh: nothing is lost"
        );
        assert_eq!(deliver(&seqs, 1, 8, &[0, 0]).0, vec![0, 0], "unnumbered");
    }
}
