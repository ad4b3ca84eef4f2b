//! Scenarios: what a run does, as plain data, and the plan of clients it turns into.
//!
//! [`Scenario`] is the validated form of the command line; [`Scenario::plan`] lays out
//! every publisher and subscriber (client id, broker address, topic, QoS) without any
//! I/O, so the layouts of `fan-in`, `fan-out` and `p2p` are unit-tested.

use std::net::SocketAddr;
use std::time::Duration;

use mqtt_codec::{ProtocolVersion, QoS};

/// The kinds of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Connection storm: open clients at a target rate, hold them, close them.
    Conn,
    /// Publishers only.
    Pub,
    /// Subscribers only (fed by another process or another tool).
    Sub,
    /// N publishers to 1 subscriber (or to a shared-subscription group).
    FanIn,
    /// 1 publisher (or a few) to N subscribers.
    FanOut,
    /// N publisher/subscriber pairs, each on its own topic.
    P2p,
}

impl Kind {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conn => "conn",
            Self::Pub => "pub",
            Self::Sub => "sub",
            Self::FanIn => "fan-in",
            Self::FanOut => "fan-out",
            Self::P2p => "p2p",
        }
    }
}

/// When publishers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long.
    Duration(Duration),
    /// After this many messages per publisher.
    Count(u64),
}

/// A fully validated run description.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub kind: Kind,
    /// Addresses publishers connect to, round robin.
    pub pub_addrs: Vec<SocketAddr>,
    /// Addresses subscribers (and `conn` clients) connect to, round robin.
    pub sub_addrs: Vec<SocketAddr>,
    pub publishers: usize,
    pub subscribers: usize,
    /// Subscribers of `fan-in`, `fan-out` and `sub` form one shared-subscription group.
    pub shared: bool,
    /// QoS per publisher, round robin over the list.
    pub qos: Vec<QoS>,
    pub payload_size: usize,
    /// Messages per second per publisher; `None` for as fast as possible.
    pub rate: Option<f64>,
    pub stop: Stop,
    pub version: ProtocolVersion,
    /// Clean start (true) or persistent sessions.
    pub clean: bool,
    /// Session expiry for persistent MQTT 5 sessions, seconds.
    pub session_expiry: u32,
    pub keep_alive: u16,
    /// QoS 1/2 messages a publisher keeps in flight.
    pub inflight: usize,
    /// Connections per second while setting up clients; `None`: as fast as possible.
    pub conn_rate: Option<f64>,
    /// `conn`: how long to hold the connections open.
    pub hold: Duration,
    /// How long to wait for outstanding acknowledgements and deliveries at the end.
    pub drain: Duration,
    /// Topics are `{prefix}/{kind}/...`; the default prefix is unique per run.
    pub topic_prefix: String,
    /// Subscription filter of a `sub` run.
    pub sub_filter: Option<String>,
}

/// One publishing client.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherPlan {
    /// Dense index, written into every payload.
    pub id: u32,
    pub client_id: String,
    pub addr: SocketAddr,
    pub topic: String,
    pub qos: QoS,
}

/// One subscribing client.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberPlan {
    pub id: u32,
    pub client_id: String,
    pub addr: SocketAddr,
    pub filter: String,
    pub qos: QoS,
    /// Publishers whose messages this subscriber (or its group) must receive; `None`
    /// when they are not ours to know (`sub`).
    pub sources: Option<Vec<u32>>,
    /// Members of one shared group carry the same group number.
    pub group: Option<u32>,
}

/// Every client of a run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub publishers: Vec<PublisherPlan>,
    pub subscribers: Vec<SubscriberPlan>,
}

impl Scenario {
    /// The highest QoS any publisher uses (subscriptions ask for it).
    pub fn max_qos(&self) -> QoS {
        self.qos.iter().copied().max().unwrap_or_default()
    }

    /// Lays out the clients. `run` makes client ids unique per run.
    pub fn plan(&self, run: &str) -> Plan {
        let p = &self.topic_prefix;
        let kind = self.kind.as_str();
        let publisher = |i: usize, topic: String| PublisherPlan {
            id: i as u32,
            client_id: format!("mqb-{run}-p{i}"),
            addr: self.pub_addrs[i % self.pub_addrs.len()],
            topic,
            qos: self.qos[i % self.qos.len()],
        };
        let subscriber = |i: usize, filter: String, sources: Option<Vec<u32>>| SubscriberPlan {
            id: i as u32,
            client_id: format!("mqb-{run}-s{i}"),
            addr: self.sub_addrs[i % self.sub_addrs.len()],
            filter,
            qos: self.max_qos(),
            sources,
            group: None,
        };
        let all_publishers = || Some((0..self.publishers as u32).collect::<Vec<_>>());
        let mut plan = Plan::default();
        match self.kind {
            Kind::Conn => {}
            Kind::Pub => {
                plan.publishers = (0..self.publishers)
                    .map(|i| publisher(i, format!("{p}/{kind}/{i}")))
                    .collect();
            }
            Kind::Sub => {
                let filter = self.sub_filter.clone().unwrap_or_else(|| format!("{p}/#"));
                plan.subscribers = (0..self.subscribers)
                    .map(|i| subscriber(i, filter.clone(), None))
                    .collect();
            }
            Kind::FanIn => {
                plan.publishers = (0..self.publishers)
                    .map(|i| publisher(i, format!("{p}/{kind}/{i}")))
                    .collect();
                plan.subscribers = (0..self.subscribers)
                    .map(|i| subscriber(i, format!("{p}/{kind}/+"), all_publishers()))
                    .collect();
            }
            Kind::FanOut => {
                plan.publishers = (0..self.publishers)
                    .map(|i| publisher(i, format!("{p}/{kind}")))
                    .collect();
                plan.subscribers = (0..self.subscribers)
                    .map(|i| subscriber(i, format!("{p}/{kind}"), all_publishers()))
                    .collect();
            }
            Kind::P2p => {
                let pairs = self.publishers;
                plan.publishers = (0..pairs)
                    .map(|i| publisher(i, format!("{p}/{kind}/{i}")))
                    .collect();
                plan.subscribers = (0..pairs)
                    .map(|i| subscriber(i, format!("{p}/{kind}/{i}"), Some(vec![i as u32])))
                    .collect();
            }
        }
        if self.shared && matches!(self.kind, Kind::FanIn | Kind::Sub | Kind::FanOut) {
            for s in &mut plan.subscribers {
                s.filter = format!("$share/mqb/{}", s.filter);
                s.group = Some(0);
            }
        }
        plan
    }
}

/// Parses "10s", "500ms", "2m", "1h" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("invalid duration unit {unit:?} in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn scenario(kind: Kind) -> Scenario {
        Scenario {
            kind,
            pub_addrs: vec!["127.0.0.1:1883".parse().unwrap()],
            sub_addrs: vec![
                "127.0.0.1:1884".parse().unwrap(),
                "127.0.0.1:1885".parse().unwrap(),
            ],
            publishers: 4,
            subscribers: 3,
            shared: false,
            qos: vec![QoS::AtMostOnce, QoS::AtLeastOnce],
            payload_size: 64,
            rate: None,
            stop: Stop::Count(10),
            version: ProtocolVersion::V3_1_1,
            clean: true,
            session_expiry: 0,
            keep_alive: 60,
            inflight: 64,
            conn_rate: None,
            hold: Duration::ZERO,
            drain: Duration::from_secs(5),
            topic_prefix: "bench/x".into(),
            sub_filter: None,
        }
    }

    #[test]
    fn fan_in_routes_every_publisher_to_the_subscriber() {
        let mut s = scenario(Kind::FanIn);
        s.subscribers = 1;
        let plan = s.plan("r");
        assert_eq!(plan.publishers.len(), 4);
        assert_eq!(plan.subscribers.len(), 1);
        let sub = &plan.subscribers[0];
        assert_eq!(sub.filter, "bench/x/fan-in/+");
        assert_eq!(sub.sources.as_deref(), Some(&[0, 1, 2, 3][..]));
        assert_eq!(
            sub.qos,
            QoS::AtLeastOnce,
            "subscriptions ask for the highest QoS"
        );
        assert_eq!(plan.publishers[2].topic, "bench/x/fan-in/2");
        assert_eq!(plan.publishers[1].qos, QoS::AtLeastOnce);
        assert_eq!(plan.publishers[2].qos, QoS::AtMostOnce);
    }

    #[test]
    fn shared_fan_in_puts_subscribers_in_one_group() {
        let mut s = scenario(Kind::FanIn);
        s.shared = true;
        let plan = s.plan("r");
        assert!(plan
            .subscribers
            .iter()
            .all(|s| s.filter == "$share/mqb/bench/x/fan-in/+" && s.group == Some(0)));
    }

    #[test]
    fn fan_out_and_p2p_layouts() {
        let mut s = scenario(Kind::FanOut);
        s.publishers = 1;
        let plan = s.plan("r");
        assert_eq!(plan.subscribers.len(), 3);
        assert!(plan
            .subscribers
            .iter()
            .all(|s| s.filter == "bench/x/fan-out"));
        // Subscribers spread over the subscribe addresses, publishers use theirs.
        assert_eq!(plan.subscribers[1].addr.port(), 1885);
        assert_eq!(plan.publishers[0].addr.port(), 1883);

        let plan = scenario(Kind::P2p).plan("r");
        assert_eq!(plan.subscribers.len(), 4, "one subscriber per pair");
        assert_eq!(plan.subscribers[3].filter, plan.publishers[3].topic);
        assert_eq!(plan.subscribers[3].sources.as_deref(), Some(&[3][..]));
        assert_ne!(plan.subscribers[0].client_id, plan.publishers[0].client_id);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5parsecs").is_err());
    }
}
