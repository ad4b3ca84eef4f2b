//! Sessions: the state MQTT keeps for a client id across connections.
//!
//! A [`Session`] outlives its connections when the client asked for a persistent
//! session. It holds the subscriptions, the queue of deliveries not yet sent, the
//! in-flight QoS 1/2 deliveries awaiting acknowledgement (resent on reconnect) and the
//! QoS 2 packet ids received but not yet released. Publishers push into the queue from
//! their own tasks; the owning connection is woken through [`Session::wake`] and drains
//! the queue as its flow-control window allows. The lock is a short-held std mutex,
//! never held across an `.await`.

pub mod metrics;
mod registry;

pub use registry::{OpenedSession, SessionRegistry};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use mqtt_codec::{ByteString, QoS, SubscriptionOptions};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::message::Delivery;

/// Why a connection is told to close by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Another connection connected with the same client id.
    TakenOver,
}

/// The live connection that currently owns a session.
#[derive(Debug)]
pub struct ConnectionSlot {
    /// Broker-wide connection number, to tell an old owner from the current one.
    pub conn_id: u64,
    /// Tells the owning connection to close (session takeover).
    pub kick: oneshot::Sender<Kick>,
}

/// One subscription as the session remembers it (to restore routes and answer
/// UNSUBSCRIBE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `$share/{group}/…` group name, for shared subscriptions.
    pub share_group: Option<ByteString>,
    /// The topic filter without the `$share/{group}/` prefix.
    pub filter: ByteString,
    pub options: SubscriptionOptions,
    /// MQTT 5 subscription identifier.
    pub id: Option<u32>,
}

/// A delivery that has been sent and awaits its acknowledgement.
#[derive(Debug, Clone)]
pub enum Inflight {
    /// PUBLISH sent; awaiting PUBACK (QoS 1) or PUBREC (QoS 2).
    Publish(Delivery),
    /// PUBREL sent; awaiting PUBCOMP.
    Released,
}

/// What happened to a delivery offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The queue was at its configured limit.
    DroppedQueueFull,
    /// QoS 0 for a session with no connection.
    DroppedOffline,
}

/// Queue limits, from the broker config.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_queued: usize,
    pub queue_qos0_offline: bool,
}

/// The mutable part of a session.
#[derive(Debug, Default)]
pub struct SessionState {
    /// Keyed by the filter as the client sent it (including any `$share/` prefix).
    pub subscriptions: HashMap<ByteString, Subscription>,
    /// Deliveries waiting to be sent.
    pub queue: VecDeque<Delivery>,
    /// Sent QoS 1/2 deliveries by packet id, in id order (resent in this order).
    pub inflight: BTreeMap<u16, Inflight>,
    /// QoS 2 packet ids received from the client and not yet released by PUBREL.
    pub incoming_qos2: HashSet<u16>,
    /// The connection that owns the session now, if any.
    pub connection: Option<ConnectionSlot>,
    /// Bumped on every (re)connect, so delayed wills and expiry timers can tell whether
    /// the client came back in the meantime.
    pub generation: u64,
    /// Seconds the session lives after its connection closes (`u32::MAX`: forever).
    pub expiry_interval: u32,
    /// Set when the session has been removed from the registry for good.
    pub ended: bool,
    next_packet_id: u16,
}

impl SessionState {
    /// The next packet id not used by an in-flight delivery, or `None` when all 65,535
    /// are in use.
    pub fn allocate_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.next_packet_id) {
                return Some(self.next_packet_id);
            }
        }
        None
    }

    /// True while connection `conn_id` owns the session (false once taken over).
    pub fn is_owned_by(&self, conn_id: u64) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|slot| slot.conn_id == conn_id)
    }

    /// Number of in-flight QoS 1/2 deliveries (counted against the client's Receive Maximum).
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }
}

/// A client's session, shared between its connection, the router and publishers.
#[derive(Debug)]
pub struct Session {
    pub client_id: ByteString,
    state: Mutex<SessionState>,
    /// Wakes the owning connection when deliveries arrive or the window opens.
    pub wake: Notify,
    /// Mirrors `state.connection.is_some()` so the router can prefer online members
    /// of a shared group without taking the lock.
    online: AtomicBool,
    /// True while the session is persistent and durability is on: its QoS 1/2
    /// deliveries are written to the session log.
    journaled: AtomicBool,
    /// Cancelled when the session ends for good: a delayed will waits on it, because
    /// the will goes out when the delay passes or the session ends, whichever is first
    /// (MQTT 5 §3.1.3.2.2).
    pub ended_signal: CancellationToken,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: ByteString) -> Self {
        Self {
            client_id,
            state: Mutex::new(SessionState::default()),
            wake: Notify::new(),
            online: AtomicBool::new(false),
            journaled: AtomicBool::new(false),
            ended_signal: CancellationToken::new(),
        }
    }

    /// Locks the state. A poisoned lock means a panic while holding it; the state is
    /// plain data, so carry on with it rather than cascade the panic.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while a connection owns the session.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    pub(crate) fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Release);
    }

    /// True when this session's QoS 1/2 deliveries go to the session log.
    pub fn is_journaled(&self) -> bool {
        self.journaled.load(Ordering::Acquire)
    }

    pub fn set_journaled(&self, journaled: bool) {
        self.journaled.store(journaled, Ordering::Release);
    }

    /// Offers a delivery to the session. QoS 0 is dropped for an offline session
    /// unless configured otherwise; a full queue drops the new delivery.
    ///
    /// The owning connection is woken only when the queue was empty: it drains the queue
    /// until it is empty, its write buffer is full or the in-flight window is, and in the
    /// last two cases it comes back to the queue without being woken (at once, or when
    /// an acknowledgement opens the window).
    pub fn enqueue(&self, delivery: Delivery, limits: QueueLimits) -> Enqueued {
        let (enqueued, wake) = self.push(delivery, limits);
        if wake {
            self.wake.notify_one();
        }
        enqueued
    }

    /// [`Session::enqueue`] without the wake-up: also returns whether the owning
    /// connection must be woken (the queue was empty), which the caller then does
    /// through [`Session::wake`] (see `crate::fanout`).
    pub fn push(&self, delivery: Delivery, limits: QueueLimits) -> (Enqueued, bool) {
        let mut state = self.lock();
        if state.ended {
            return (Enqueued::DroppedOffline, false);
        }
        if state.connection.is_none()
            && delivery.qos == QoS::AtMostOnce
            && !limits.queue_qos0_offline
        {
            return (Enqueued::DroppedOffline, false);
        }
        if state.queue.len() >= limits.max_queued {
            return (Enqueued::DroppedQueueFull, false);
        }
        state.queue.push_back(delivery);
        (Enqueued::Queued, state.queue.len() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use std::sync::Arc;
    use std::time::Instant;

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: "t".into(),
                payload: bytes::Bytes::from_static(b"x"),
                qos,
                retain: false,
                properties: Default::default(),
                publisher: "p".into(),
                received_at: Instant::now(),
                remote: false,
                trace: None,
            }),
            qos,
            retain: false,
            span: None,
            durable: None,
            replay: false,
            subscription_ids: vec![],
        }
    }

    const LIMITS: QueueLimits = QueueLimits {
        max_queued: 2,
        queue_qos0_offline: false,
    };

    #[test]
    fn offline_session_keeps_qos1_drops_qos0_and_bounds_queue() {
        let s = Session::new("c".into());
        assert_eq!(
            s.enqueue(delivery(QoS::AtMostOnce), LIMITS),
            Enqueued::DroppedOffline
        );
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), LIMITS),
            Enqueued::Queued
        );
        assert_eq!(
            s.enqueue(delivery(QoS::ExactlyOnce), LIMITS),
            Enqueued::Queued
        );
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), LIMITS),
            Enqueued::DroppedQueueFull
        );
        assert_eq!(s.lock().queue.len(), 2);
    }

    #[test]
    fn the_connection_is_woken_when_its_queue_stops_being_empty() {
        use futures::FutureExt;
        let limits = QueueLimits {
            max_queued: 10,
            queue_qos0_offline: true,
        };
        let woken = |s: &Session| s.wake.notified().now_or_never().is_some();
        let s = Session::new("c".into());
        s.enqueue(delivery(QoS::AtMostOnce), limits);
        assert!(woken(&s), "the first delivery wakes the connection");
        s.enqueue(delivery(QoS::AtMostOnce), limits);
        assert!(
            !woken(&s),
            "a queue that was not empty is being drained already"
        );
        s.lock().queue.clear();
        s.enqueue(delivery(QoS::AtLeastOnce), limits);
        assert!(woken(&s), "emptied, then a delivery: woken again");
    }

    #[test]
    fn packet_ids_skip_inflight_and_wrap() {
        let mut st = SessionState::default();
        assert_eq!(st.allocate_packet_id(), Some(1));
        st.inflight.insert(2, Inflight::Released);
        assert_eq!(st.allocate_packet_id(), Some(3));
        st.next_packet_id = u16::MAX;
        assert_eq!(st.allocate_packet_id(), Some(1));
        for id in 1..=u16::MAX {
            st.inflight.insert(id, Inflight::Released);
        }
        assert_eq!(st.allocate_packet_id(), None);
    }
}
