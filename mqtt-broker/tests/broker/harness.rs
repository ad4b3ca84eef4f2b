//! The test harness: an in-process broker on 127.0.0.1:0 ([`TestBroker`]), rumqttc v4
//! and v5 clients whose event loops run in tasks and forward incoming packets to a
//! channel ([`V4`], [`V5`]), a raw-socket client speaking `mqtt_codec` packets for what
//! no client library will send ([`Raw`]), and a `/metrics` scraper.
//!
//! Waiting for something that must happen uses [`WAIT`] (generous, so a loaded CI
//! machine does not fail a correct broker); asserting that something does NOT happen
//! uses [`QUIET`]. Nothing sleeps to wait for readiness: a subscriber is ready once its
//! SUBACK arrived, a broker once `Server::bind` returned.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mqtt_broker::config::{ListenerConfig, ListenerProtocol};
use mqtt_broker::{Broker, BrokerConfig, Server};
use mqtt_codec::{
    ByteString, ConnAck, Connect, ConnectProperties, Packet, ProtocolVersion, Publish,
    PublishProperties, QoS, ReasonCode, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Deadline for something that must happen.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for something that must NOT happen.
pub const QUIET: Duration = Duration::from_millis(400);

/// The total of `robustmq_packets_received_error_total` over every reason.
pub const ERRORS: &str = "robustmq_packets_received_error_total";

// ---------------------------------------------------------------------------------
// Broker

/// A broker running in this test's runtime; stopped when dropped.
pub struct TestBroker {
    pub addrs: Vec<(ListenerProtocol, SocketAddr)>,
    pub metrics_addr: SocketAddr,
    pub broker: Arc<Broker>,
    stop: CancellationToken,
    run: Option<JoinHandle<()>>,
}

impl TestBroker {
    /// A broker with the test defaults: one TCP listener, metrics, no `$SYS`.
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// A broker with the test defaults changed by `tweak`.
    pub async fn with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        let mut config = BrokerConfig {
            listeners: vec![ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())],
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        };
        config.sys.interval_secs = 0;
        tweak(&mut config);
        let identity = common_metrics::Identity::from_env("mqtt-broker", "test");
        let server = Server::bind(config, &identity)
            .await
            .expect("the test broker binds");
        let addrs = server.mqtt_addrs();
        let metrics_addr = server.metrics_addr().expect("metrics endpoint enabled");
        let broker = server.broker().clone();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let run = tokio::spawn(server.run(async move { token.cancelled().await }));
        Self {
            addrs,
            metrics_addr,
            broker,
            stop,
            run: Some(run),
        }
    }

    /// The first listener of `protocol`.
    pub fn addr(&self, protocol: ListenerProtocol) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {} listener", protocol.as_str()))
    }

    /// The TCP listener.
    pub fn tcp(&self) -> SocketAddr {
        self.addr(ListenerProtocol::Tcp)
    }

    /// Triggers shutdown without waiting.
    pub fn trigger_shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits for `Server::run` to return after [`TestBroker::trigger_shutdown`].
    pub async fn wait_stopped(mut self) {
        let run = self.run.take().expect("running");
        tokio::time::timeout(WAIT, run)
            .await
            .expect("Server::run returns after shutdown")
            .expect("Server::run does not panic");
    }

    /// The `/metrics` exposition, parsed.
    pub async fn metrics(&self) -> Vec<common_metrics::testing::Sample> {
        let (status, body) = http_get(self.metrics_addr, "/metrics").await;
        assert_eq!(status, 200, "GET /metrics: {body}");
        common_metrics::testing::parse_metrics(&body)
    }

    /// The sum of every sample named `name` whose labels include `labels` (0 if none).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sum(&self.metrics().await, name, labels)
    }

    /// Waits until `metric(name, labels) >= at_least` (metrics are updated by the
    /// connection tasks, possibly a moment after the client saw the effect).
    pub async fn metric_reaches(&self, name: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.metric(name, labels).await;
            if v >= at_least {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}{labels:?} stayed at {v}, expected >= {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts that a well-behaved client can still subscribe, publish and receive.
    pub async fn assert_healthy(&self) {
        let id = format!("healthy-{}", rand_suffix());
        let mut c = V4::connect(self.tcp(), &id, |_| {}).await;
        let topic = format!("health/{id}");
        c.subscribe(&topic, rumqttc::QoS::AtLeastOnce).await;
        c.client
            .publish(&topic, rumqttc::QoS::AtLeastOnce, false, "ok")
            .await
            .unwrap();
        let p = c.publish().await;
        assert_eq!(p.topic, topic);
        assert_eq!(&p.payload[..], b"ok");
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Sum of the samples named `name` whose labels include `labels`.
pub fn sum(
    samples: &[common_metrics::testing::Sample],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// A minimal HTTP/1.1 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        std::io::Result::Ok(out)
    };
    let raw = tokio::time::timeout(WAIT, fetch)
        .await
        .expect("HTTP answer in time")
        .expect("HTTP GET");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    let body = match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            unchunk(body)
        }
        Some((_, body)) => body.to_owned(),
        None => String::new(),
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A short random suffix for client ids and topics.
pub fn rand_suffix() -> String {
    use rand::Rng;
    format!("{:08x}", rand::rng().random::<u32>())
}

// ---------------------------------------------------------------------------------
// rumqttc clients

/// Incoming packets of a client library's event loop, forwarded from its task.
pub struct Events<P, E> {
    rx: mpsc::UnboundedReceiver<Result<P, E>>,
    /// Packets read while looking for another kind, in order.
    pending: VecDeque<P>,
    /// The error that ended the event loop, once seen.
    pub ended: Option<E>,
    task: JoinHandle<()>,
}

impl<P: Debug, E: Debug> Events<P, E> {
    /// Waits for the first packet `pick` accepts (others stay queued, in order).
    pub async fn find<T>(&mut self, what: &str, mut pick: impl FnMut(&P) -> Option<T>) -> T {
        if let Some(i) = self.pending.iter().position(|p| pick(p).is_some()) {
            let p = self.pending.remove(i).unwrap();
            return pick(&p).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            match next {
                Err(_) => panic!(
                    "timed out waiting for {what}; other packets: {:?}",
                    self.pending
                ),
                Ok(None) => panic!("event loop gone while waiting for {what}: {:?}", self.ended),
                Ok(Some(Err(e))) => panic!(
                    "connection ended while waiting for {what}: {e:?}; seen {:?}",
                    self.pending
                ),
                Ok(Some(Ok(p))) => match pick(&p) {
                    Some(t) => return t,
                    None => self.pending.push_back(p),
                },
            }
        }
    }

    /// Asserts that no packet `pick` accepts arrives within `within`.
    pub async fn none(&mut self, what: &str, within: Duration, mut pick: impl FnMut(&P) -> bool) {
        if let Some(p) = self.pending.iter().find(|p| pick(p)) {
            panic!("unexpected {what}: {p:?}");
        }
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(next)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            match next {
                Ok(p) if pick(&p) => panic!("unexpected {what}: {p:?}"),
                Ok(p) => self.pending.push_back(p),
                Err(e) => {
                    self.ended = Some(e);
                    return;
                }
            }
        }
    }

    /// Waits until the event loop reports the error that ended the connection.
    pub async fn closed(&mut self) -> E {
        if let Some(e) = self.ended.take() {
            return e;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => panic!("connection still open; packets: {:?}", self.pending),
                Ok(None) => panic!("event loop gone without an error"),
                Ok(Some(Err(e))) => return e,
                Ok(Some(Ok(p))) => self.pending.push_back(p),
            }
        }
    }

    /// Stops the event loop: the socket is dropped without DISCONNECT (an abrupt close).
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl<P, E> Drop for Events<P, E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Spawns the task that polls an event loop and forwards what it yields.
macro_rules! spawn_event_loop {
    ($eventloop:expr, $incoming:path, $ping:pat) => {{
        let (tx, rx) = mpsc::unbounded_channel();
        let mut eventloop = $eventloop;
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok($incoming($ping)) => {}
                    Ok($incoming(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Without this stop, rumqttc would reconnect on the next poll.
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        Events {
            rx,
            pending: VecDeque::new(),
            ended: None,
            task,
        }
    }};
}

impl<P: Debug, E: Debug> Events<P, E> {
    /// Waits for the first packet `pick` accepts, or the error that ended the loop.
    pub async fn find_or_error<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&P) -> Option<T>,
    ) -> Result<T, E> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => panic!(
                    "timed out waiting for {what}; other packets: {:?}",
                    self.pending
                ),
                Ok(None) => panic!("event loop gone while waiting for {what}"),
                Ok(Some(Err(e))) => return Err(e),
                Ok(Some(Ok(p))) => match pick(&p) {
                    Some(t) => return Ok(t),
                    None => self.pending.push_back(p),
                },
            }
        }
    }
}

/// An MQTT 3.1.1 rumqttc client.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub events: Events<rumqttc::Packet, rumqttc::ConnectionError>,
    pub connack: rumqttc::ConnAck,
}

impl V4 {
    /// Options for `id` at `addr` with a clean session and keep alive 60 s.
    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(60));
        o
    }

    /// Connects and waits for a successful CONNACK.
    pub async fn connect(
        addr: SocketAddr,
        id: &str,
        tweak: impl FnOnce(&mut rumqttc::MqttOptions),
    ) -> Self {
        let mut o = Self::options(addr, id);
        tweak(&mut o);
        Self::connect_with(o)
            .await
            .unwrap_or_else(|e| panic!("{id} connects: {e:?}"))
    }

    /// Connects with `options`; `Err` carries the event loop's error (a refused CONNACK).
    pub async fn connect_with(
        options: rumqttc::MqttOptions,
    ) -> Result<Self, rumqttc::ConnectionError> {
        let (client, eventloop) = rumqttc::AsyncClient::new(options, 100);
        let mut events = spawn_event_loop!(
            eventloop,
            rumqttc::Event::Incoming,
            rumqttc::Packet::PingResp
        );
        let connack = events
            .find_or_error("CONNACK", |p| match p {
                rumqttc::Packet::ConnAck(c) => Some(c.clone()),
                _ => None,
            })
            .await?;
        Ok(Self {
            client,
            events,
            connack,
        })
    }

    /// Subscribes and waits for the SUBACK; returns its return codes.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        self.events
            .find("SUBACK", |p| match p {
                rumqttc::Packet::SubAck(s) => Some(s.return_codes.clone()),
                _ => None,
            })
            .await
    }

    /// Waits for the next PUBLISH.
    pub async fn publish(&mut self) -> rumqttc::Publish {
        self.events
            .find("PUBLISH", |p| match p {
                rumqttc::Packet::Publish(p) => Some(p.clone()),
                _ => None,
            })
            .await
    }

    /// Asserts that no PUBLISH arrives for a while.
    pub async fn no_publish(&mut self) {
        self.events
            .none("PUBLISH", QUIET, |p| {
                matches!(p, rumqttc::Packet::Publish(_))
            })
            .await
    }

    /// Sends DISCONNECT and waits for the broker to close the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        let _ = self.events.closed().await;
    }
}

/// An MQTT 5 rumqttc client.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub events: Events<rumqttc::v5::mqttbytes::v5::Packet, rumqttc::v5::ConnectionError>,
    pub connack: rumqttc::v5::mqttbytes::v5::ConnAck,
}

/// rumqttc's MQTT 5 packet types.
pub use rumqttc::v5::mqttbytes::v5 as r5;

impl V5 {
    /// Options for `id` at `addr` with clean start and keep alive 60 s.
    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(60));
        o
    }

    /// Connects and waits for a successful CONNACK.
    pub async fn connect(
        addr: SocketAddr,
        id: &str,
        tweak: impl FnOnce(&mut rumqttc::v5::MqttOptions),
    ) -> Self {
        let mut o = Self::options(addr, id);
        tweak(&mut o);
        Self::connect_with(o)
            .await
            .unwrap_or_else(|e| panic!("{id} connects: {e:?}"))
    }

    /// Connects with `options`; `Err` carries the event loop's error (a refused CONNACK).
    pub async fn connect_with(
        options: rumqttc::v5::MqttOptions,
    ) -> Result<Self, rumqttc::v5::ConnectionError> {
        let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, 100);
        let mut events = spawn_event_loop!(
            eventloop,
            rumqttc::v5::Event::Incoming,
            r5::Packet::PingResp(_)
        );
        let connack = events
            .find_or_error("CONNACK", |p| match p {
                r5::Packet::ConnAck(c) => Some(c.clone()),
                _ => None,
            })
            .await?;
        Ok(Self {
            client,
            events,
            connack,
        })
    }

    /// Subscribes and waits for the SUBACK; returns its reason codes.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> Vec<r5::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        self.suback().await
    }

    /// Subscribes with full options and properties and waits for the SUBACK.
    pub async fn subscribe_filter(
        &mut self,
        filter: r5::Filter,
        props: Option<r5::SubscribeProperties>,
    ) -> Vec<r5::SubscribeReasonCode> {
        match props {
            Some(props) => self
                .client
                .subscribe_many_with_properties([filter], props)
                .await
                .unwrap(),
            None => self.client.subscribe_many([filter]).await.unwrap(),
        }
        self.suback().await
    }

    async fn suback(&mut self) -> Vec<r5::SubscribeReasonCode> {
        self.events
            .find("SUBACK", |p| match p {
                r5::Packet::SubAck(s) => Some(s.return_codes.clone()),
                _ => None,
            })
            .await
    }

    /// Waits for the next PUBLISH.
    pub async fn publish(&mut self) -> r5::Publish {
        self.events
            .find("PUBLISH", |p| match p {
                r5::Packet::Publish(p) => Some(p.clone()),
                _ => None,
            })
            .await
    }

    /// Asserts that no PUBLISH arrives for a while.
    pub async fn no_publish(&mut self) {
        self.events
            .none("PUBLISH", QUIET, |p| matches!(p, r5::Packet::Publish(_)))
            .await
    }

    /// Sends DISCONNECT and waits for the broker to close the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        let _ = self.events.closed().await;
    }
}

// ---------------------------------------------------------------------------------
// Raw client

/// Any byte stream a raw client can run over (TCP, TLS, WebSocket adapters).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A client that writes `mqtt_codec` packets (or any bytes) and decodes what comes back.
pub struct Raw {
    stream: Box<dyn Stream>,
    buf: BytesMut,
    pub version: ProtocolVersion,
}

/// A CONNECT for `id` with clean start, keep alive 60 s and no properties.
pub fn connect_packet(version: ProtocolVersion, id: &str) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

/// A PUBLISH packet.
pub fn publish_packet(
    topic: &str,
    qos: QoS,
    packet_id: Option<u16>,
    payload: &'static [u8],
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        payload: Bytes::from_static(payload),
        properties: PublishProperties::default(),
    })
}

/// A SUBSCRIBE for one filter.
pub fn subscribe_packet(
    packet_id: u16,
    filter: &str,
    options: SubscriptionOptions,
    id: Option<u32>,
) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id,
        filters: vec![SubscribeFilter {
            filter: ByteString::from(filter),
            options,
        }],
        properties: mqtt_codec::SubscribeProperties {
            subscription_identifier: id,
            user_properties: vec![],
        },
    })
}

/// Subscription options with just a QoS.
pub fn qos_opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..Default::default()
    }
}

impl Raw {
    /// Opens a TCP connection without sending anything.
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(addr).await.expect("TCP connect");
        Self::over(Box::new(stream), version)
    }

    /// Wraps an already open stream.
    pub fn over(stream: Box<dyn Stream>, version: ProtocolVersion) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            version,
        }
    }

    /// Connects with `connect` and returns the CONNACK (whatever its reason code).
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let mut raw = Self::open(addr, connect.protocol).await;
        let connack = raw.handshake(connect).await;
        (raw, connack)
    }

    /// Connects `id` with clean start and asserts success.
    pub async fn connected(addr: SocketAddr, version: ProtocolVersion, id: &str) -> Self {
        let (raw, connack) = Self::connect(addr, connect_packet(version, id)).await;
        assert_eq!(
            connack.reason_code,
            ReasonCode::SUCCESS,
            "CONNACK for {id}: {connack:?}"
        );
        raw
    }

    /// Sends CONNECT and waits for CONNACK.
    pub async fn handshake(&mut self, connect: Connect) -> ConnAck {
        self.send(Packet::Connect(Box::new(connect))).await;
        match self.recv().await {
            Some(Packet::ConnAck(c)) => c,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Encodes and sends one packet.
    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        mqtt_codec::encode(&packet, self.version, &mut out).expect("test packet encodes");
        self.send_bytes(&out).await;
    }

    /// Sends bytes as they are. A write error (the broker already closed) is ignored:
    /// the test then observes the close on read.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// The next packet; `None` when the broker closed the connection. Panics after [`WAIT`].
    pub async fn recv(&mut self) -> Option<Packet> {
        match self.recv_within(WAIT).await {
            Ok(p) => p,
            Err(()) => panic!("no packet from the broker within {WAIT:?}"),
        }
    }

    /// The next packet within `within`: `Err(())` on timeout, `Ok(None)` when closed.
    pub async fn recv_within(&mut self, within: Duration) -> Result<Option<Packet>, ()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match mqtt_codec::decode(
                &mut self.buf,
                Some(self.version),
                mqtt_codec::MAX_PACKET_SIZE,
            ) {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                Err(e) => panic!("the broker sent an undecodable packet: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Asserts that nothing arrives (and the connection stays open) for [`QUIET`].
    pub async fn nothing(&mut self) {
        match self.recv_within(QUIET).await {
            Err(()) => {}
            Ok(p) => panic!("expected silence, got {p:?}"),
        }
    }

    /// Waits for the next PUBLISH, answering nothing; other packets panic.
    pub async fn publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Reads until the broker closes the connection; returns every packet seen.
    pub async fn closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        loop {
            match self.recv_within(WAIT).await {
                Ok(Some(p)) => seen.push(p),
                Ok(None) => return seen,
                Err(()) => panic!("connection still open after {WAIT:?}; packets: {seen:?}"),
            }
        }
    }

    /// Asserts that the broker closes the connection, for MQTT 5 after a DISCONNECT
    /// with `reason` (for 3.x: just the close, and no packet other than `allowed`).
    pub async fn expect_disconnect(&mut self, reason: ReasonCode) {
        let seen = self.closed().await;
        if self.version.is_v5() {
            match seen.last() {
                Some(Packet::Disconnect(d)) => {
                    assert_eq!(
                        d.reason_code, reason,
                        "DISCONNECT reason; packets: {seen:?}"
                    )
                }
                _ => panic!("expected DISCONNECT {reason:?} before the close, got {seen:?}"),
            }
        } else {
            assert!(
                seen.iter().all(|p| !matches!(p, Packet::Disconnect(_))),
                "3.x has no server DISCONNECT: {seen:?}"
            );
        }
    }

    /// Subscribes to one filter and asserts the SUBACK grants `options.qos`.
    pub async fn subscribe(&mut self, filter: &str, options: SubscriptionOptions, id: Option<u32>) {
        self.send(subscribe_packet(1, filter, options, id)).await;
        match self.recv().await {
            Some(Packet::SubAck(s)) => assert_eq!(
                s.reason_codes,
                vec![ReasonCode(options.qos as u8)],
                "{filter}"
            ),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
}
