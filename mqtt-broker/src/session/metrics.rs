//! Session figures for `/metrics`, counted when scraped rather than on every message.

use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Session;
use crate::broker::Broker;

/// Session figures counted when scraped rather than on every message: sessions by state,
/// queued and in-flight deliveries, shared-subscription groups. A scrape walks this
/// broker's sessions once (locking each briefly); the message path pays nothing.
#[derive(Debug)]
pub struct SessionCollector {
    broker: Weak<Broker>,
}

impl SessionCollector {
    /// Registers the collector for `broker` in `registry` (the `robustmq_` registry).
    pub fn register(registry: &mut Registry, broker: &Arc<Broker>) {
        registry.register_collector(Box::new(SessionCollector {
            broker: Arc::downgrade(broker),
        }));
    }
}

/// What [`SessionCollector`] counts.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SessionCounts {
    pub online: i64,
    pub offline: i64,
    pub persistent: i64,
    pub queued: i64,
    pub inflight: i64,
    pub shared_groups: i64,
}

impl SessionCounts {
    pub(crate) fn of(sessions: &[Arc<Session>]) -> SessionCounts {
        let mut counts = SessionCounts::default();
        let mut groups = std::collections::HashSet::new();
        for session in sessions {
            let st = session.lock();
            if st.ended {
                continue;
            }
            if st.connection.is_some() {
                counts.online += 1;
            } else {
                counts.offline += 1;
            }
            if st.expiry_interval > 0 {
                counts.persistent += 1;
            }
            counts.queued += st.queue.len() as i64;
            counts.inflight += st.inflight.len() as i64;
            for sub in st.subscriptions.values() {
                if let Some(group) = &sub.share_group {
                    groups.insert((group.clone(), sub.filter.clone()));
                }
            }
        }
        counts.shared_groups = groups.len() as i64;
        counts
    }
}

impl Collector for SessionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(broker) = self.broker.upgrade() else {
            return Ok(());
        };
        let c = SessionCounts::of(&broker.sessions.all());
        for (name, help, value) in [
            ("sessions_online", "Sessions with a connected client", c.online),
            (
                "sessions_offline",
                "Sessions kept while their client is away (persistent sessions, wills pending)",
                c.offline,
            ),
            (
                "sessions_persistent",
                "Sessions with a session expiry interval (they outlive their connection)",
                c.persistent,
            ),
            (
                "session_queued_messages",
                "Deliveries waiting in session queues: offline sessions' backlog and online ones' beyond the in-flight window",
                c.queued,
            ),
            (
                "session_inflight_messages",
                "QoS 1/2 deliveries sent and not yet acknowledged by their subscriber",
                c.inflight,
            ),
            (
                "shared_subscription_groups",
                "Shared-subscription groups ($share/<group>/<filter>) with a member on this broker",
                c.shared_groups,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use mqtt_codec::SubscriptionOptions;

    use super::*;
    use crate::session::{ConnectionSlot, Subscription};

    fn subscribe(session: &Session, group: Option<&str>, filter: &str) {
        let key = match group {
            Some(g) => format!("$share/{g}/{filter}"),
            None => filter.to_owned(),
        };
        session.lock().subscriptions.insert(
            key.into(),
            Subscription {
                share_group: group.map(Into::into),
                filter: filter.into(),
                options: SubscriptionOptions::default(),
                id: None,
            },
        );
    }

    #[test]
    fn session_counts_by_state_and_distinct_shared_groups() {
        let (kick, _rx) = tokio::sync::oneshot::channel();
        let online = Arc::new(Session::new("a".into()));
        online.lock().connection = Some(ConnectionSlot { conn_id: 1, kick });
        let away = Arc::new(Session::new("b".into()));
        away.lock().expiry_interval = 300;
        let ended = Arc::new(Session::new("c".into()));
        ended.lock().ended = true;
        subscribe(&online, Some("g"), "t/#");
        subscribe(&away, Some("g"), "t/#");
        subscribe(&away, Some("g"), "u/#");
        subscribe(&away, None, "v");
        let counts = SessionCounts::of(&[online, away, ended]);
        assert_eq!(
            counts,
            SessionCounts {
                online: 1,
                offline: 1,
                persistent: 1,
                queued: 0,
                inflight: 0,
                shared_groups: 2,
            }
        );
    }
}
