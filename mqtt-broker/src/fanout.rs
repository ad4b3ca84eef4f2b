//! The scratch space a publisher routes messages with, and the wake-ups it owes.
//!
//! A session's connection is woken when a delivery lands in its empty queue. Woken at
//! once, a subscriber on the other core starts writing while the publisher is still
//! routing what it read: it writes a few deliveries, finds its queue empty, sleeps, and
//! is woken by the next message. In a QoS 0 fan-out the broker settled, in some runs,
//! into that mode: small writes, a wake-up every few messages, and a third less
//! throughput than in the other runs. So a [`Fanout`] holds the wake-ups back while the
//! publisher handles the input already waiting on its socket, and then sends each
//! session one.
//!
//! The wait is bounded: after [`WAKE_AFTER`] messages the held wake-ups go out anyway,
//! and a publisher that is about to wait for anything (a retained store, a full forward
//! queue, a placement-center call) sends them first. A publisher whose socket holds one
//! message at a time wakes its subscribers right after routing it, as before.

use std::sync::Arc;

use crate::router::Target;
use crate::session::Session;

/// Messages routed at most while wake-ups are held back. It bounds the delay added to
/// the first of them when a publisher floods: routing 256 messages to ten subscribers
/// takes a few hundred microseconds. Measured in a QoS 0 fan-out (benches/README.md):
/// 64 gained less, and 1,024 no more.
pub const WAKE_AFTER: usize = 256;

/// Routing scratch space, reused across publishes so that routing a message allocates
/// nothing, and the sessions whose connections are still to be woken.
///
/// Dropping it wakes them: a connection that closes with wake-ups held still sends them.
#[derive(Debug, Default)]
pub struct Fanout {
    /// The targets of the message being routed (drained by each publish).
    pub(crate) targets: Vec<Target>,
    /// Sessions whose queue stopped being empty since the last [`Fanout::wake`].
    pub(crate) wakes: Vec<Arc<Session>>,
    /// Messages routed since the last [`Fanout::wake`].
    routed: usize,
}

impl Fanout {
    /// Counts one routed message; wakes the held sessions once [`WAKE_AFTER`] have been.
    pub(crate) fn routed(&mut self) {
        self.routed += 1;
        if self.routed >= WAKE_AFTER {
            self.wake();
        }
    }

    /// Wakes every held session's connection.
    pub fn wake(&mut self) {
        self.routed = 0;
        for session in self.wakes.drain(..) {
            session.wake.notify_one();
        }
    }

    /// Sessions held, not yet woken.
    pub fn held(&self) -> usize {
        self.wakes.len()
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::FutureExt;

    fn session() -> Arc<Session> {
        Arc::new(Session::new("s".into()))
    }

    /// True when a wake-up is stored for `session`'s connection.
    fn woken(session: &Session) -> bool {
        session.wake.notified().now_or_never().is_some()
    }

    #[test]
    fn held_wake_ups_go_out_when_asked() {
        let s = session();
        let mut fanout = Fanout::default();
        fanout.wakes.push(s.clone());
        fanout.routed();
        assert!(!woken(&s));
        assert_eq!(fanout.held(), 1);
        fanout.wake();
        assert!(woken(&s));
        assert_eq!(fanout.held(), 0);
    }

    #[test]
    fn held_wake_ups_go_out_after_a_bounded_number_of_messages() {
        let s = session();
        let mut fanout = Fanout::default();
        fanout.wakes.push(s.clone());
        for _ in 1..WAKE_AFTER {
            fanout.routed();
        }
        assert!(!woken(&s));
        fanout.routed();
        assert!(woken(&s));
    }

    #[test]
    fn dropping_the_fanout_wakes_what_it_held() {
        let s = session();
        let mut fanout = Fanout::default();
        fanout.wakes.push(s.clone());
        drop(fanout);
        assert!(woken(&s));
    }
}
