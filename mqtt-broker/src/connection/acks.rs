//! The acknowledgements of QoS 1/2 PUBLISHes that wait until their message is durable:
//! written to this broker's session log and accepted by every peer it was forwarded to.
//!
//! They leave in the order the PUBLISHes came in (MQTT 4.6: a PUBACK never overtakes an
//! earlier one), so only the oldest is ever polled. Its wait registers the connection's
//! waker with the one part it still waits for; a peer's answer to a batch of a hundred
//! messages then wakes the connection once, not a hundred times, and waiting costs no
//! allocation beyond the queue's slot (a boxed future per acknowledgement in a
//! `FuturesOrdered` cost an allocation, a task node and a wake-up each: about a tenth of
//! the publishing broker's CPU in a cross-node QoS 1 flood).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

use super::inbound::DurableAck;
use crate::cluster::durable::{Pending, RECEIPT_LATE};

/// Acknowledgements waiting for their messages, oldest first.
#[derive(Default)]
pub(super) struct AckQueue {
    waiting: VecDeque<Waiting>,
    /// The oldest one's journal deadline, armed while it waits for the journal.
    timer: Option<Pin<Box<Sleep>>>,
}

struct Waiting {
    ack: DurableAck,
    pending: Pending,
    /// When the journal wait started; a wait for peers alone has no deadline here, and
    /// reads no clock.
    since: Option<Instant>,
}

impl AckQueue {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Queues `ack` to be sent once `pending` is done.
    pub fn push(&mut self, ack: DurableAck, pending: Pending) {
        let since = pending.waits_for_journal().then(Instant::now);
        self.waiting.push_back(Waiting {
            ack,
            pending,
            since,
        });
    }

    /// The oldest acknowledgement, once its message is durable or could not be made so.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<DurableAck> {
        let Some(oldest) = self.waiting.front_mut() else {
            return Poll::Pending;
        };
        let result = match oldest.pending.poll_durable(cx) {
            Poll::Ready(result) => result,
            Poll::Pending if oldest.pending.waits_for_journal() => {
                let since = oldest.since.expect("set for a journal wait");
                let deadline = since + Pending::JOURNAL_DEADLINE;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Err(RECEIPT_LATE.into()),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Pending => return Poll::Pending,
        };
        let done = self.waiting.pop_front().expect("polled above");
        Poll::Ready(DurableAck { result, ..done.ack })
    }

    /// The oldest acknowledgement if it is ready now, without waiting: for sending the
    /// ones one answer released together in the same write. The next [`poll_next`]
    /// registers the real waker again.
    ///
    /// [`poll_next`]: AckQueue::poll_next
    pub fn next_ready(&mut self) -> Option<DurableAck> {
        match self.poll_next(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(ack) => Some(ack),
            Poll::Pending => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_codec::{QoS, ReasonCode};

    fn ack(packet_id: u16) -> DurableAck {
        DurableAck {
            qos: QoS::AtLeastOnce,
            read_at: std::time::Instant::now(),
            packet_id,
            reason: ReasonCode::SUCCESS,
            result: Ok(()),
        }
    }

    fn poll(queue: &mut AckQueue) -> Poll<DurableAck> {
        queue.poll_next(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn acknowledgements_leave_in_order_once_their_peers_answered() {
        let mut queue = AckQueue::default();
        let mut first = Pending::default();
        let first_peer = first.peer();
        let mut second = Pending::default();
        let second_peer = second.peer();
        queue.push(ack(1), first);
        queue.push(ack(2), second);
        assert!(poll(&mut queue).is_pending());
        // The later one answered first: it still waits behind the earlier one.
        second_peer.send(()).unwrap();
        assert!(poll(&mut queue).is_pending());
        first_peer.send(()).unwrap();
        let Poll::Ready(one) = poll(&mut queue) else {
            panic!("the first is durable")
        };
        assert_eq!((one.packet_id, one.result.is_ok()), (1, true));
        let two = queue.next_ready().expect("the second is durable too");
        assert_eq!((two.packet_id, two.result.is_ok()), (2, true));
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_peer_that_never_answers_fails_its_acknowledgement() {
        let mut queue = AckQueue::default();
        let mut pending = Pending::default();
        drop(pending.peer());
        queue.push(ack(7), pending);
        let failed = queue.next_ready().expect("answered: failed");
        assert_eq!((failed.packet_id, failed.result.is_ok()), (7, false));
    }

    #[tokio::test]
    async fn a_silent_journal_fails_at_its_deadline() {
        let mut queue = AckQueue::default();
        let (receipt, _writer) = crate::cluster::durable::Receipt::unanswered();
        queue.push(ack(3), Pending::journal(Some(receipt)));
        assert!(poll(&mut queue).is_pending(), "within the deadline");
        // One written a deadline ago behind it: it fails once it is the oldest.
        let (receipt, _writer) = crate::cluster::durable::Receipt::unanswered();
        queue.waiting.push_back(Waiting {
            ack: ack(4),
            pending: Pending::journal(Some(receipt)),
            since: Instant::now().checked_sub(Pending::JOURNAL_DEADLINE),
        });
        assert!(poll(&mut queue).is_pending(), "the oldest still has time");
        queue.waiting.pop_front();
        let late = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            std::future::poll_fn(|cx| queue.poll_next(cx)),
        )
        .await
        .expect("failed at once: its deadline has passed");
        assert_eq!((late.packet_id, late.result.is_ok()), (4, false));
    }
}
