//! The CONNECT handshake: read CONNECT within the connect timeout, validate it,
//! authenticate, claim the session cluster-wide (taking it over from the broker that had
//! it), open (or take over) the session, answer CONNACK and resend what was in flight
//! when the session was last connected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqtt_codec::{
    ByteString, ConnAck, ConnAckProperties, Connect, DecodeError, LastWill, Packet,
    ProtocolVersion, QoS, ReasonCode,
};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::io::ReadError;
use super::{Client, Close, Io, ListenerContext};
use crate::auth::AuthResult;
use crate::broker::Broker;
use crate::message::{Message, MessageProperties, Will};
use crate::session::{Inflight, Session, SessionState};

/// Reads and answers CONNECT; on success the client owns its session.
pub(super) async fn handshake<R, W>(
    broker: &Arc<Broker>,
    mut io: Io<R, W>,
    peer: SocketAddr,
    listener: &ListenerContext,
) -> Result<Client<R, W>, Close>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = &broker.config.limits;
    let timeout = Duration::from_secs(limits.connect_timeout_secs);
    let read = tokio::select! {
        r = tokio::time::timeout(timeout, io.read_packet(None)) => r,
        _ = broker.shutdown.cancelled() => return Err(Close::Shutdown),
    };
    let connect = match read {
        Err(_) => {
            broker.metrics.packet_error("connect_timeout");
            return Err(Close::ConnectTimeout);
        }
        Ok(Ok(Some(Packet::Connect(connect)))) => connect,
        Ok(Ok(Some(_))) => {
            broker.metrics.packet_error("protocol_error");
            return Err(Close::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "first packet is not CONNECT",
            ));
        }
        Ok(Ok(None)) => return Err(Close::PeerClosed),
        Ok(Err(ReadError::Io(_))) => return Err(Close::Io),
        Ok(Err(ReadError::Decode(e))) => {
            broker.metrics.packet_error(e.kind());
            if let DecodeError::UnsupportedProtocolVersion(_) = e {
                // The client's version is unknown; a 3.1.1 CONNACK (return code 1) is
                // what 3.x clients understand and what the 5.0 spec allows.
                return Err(refuse(
                    &mut io,
                    ProtocolVersion::V3_1_1,
                    ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                )
                .await);
            }
            return Err(Close::protocol(e.reason_code(), "malformed CONNECT"));
        }
    };
    let read_at = std::time::Instant::now();
    let version = connect.protocol;
    let metrics = broker.metrics.connection(listener.protocol, version);
    metrics.packet_received(mqtt_codec::PacketKind::Connect);
    match accept(broker, &connect, listener).await {
        Ok(accepted) => {
            let client = open_session(broker, io, *connect, accepted, peer, metrics).await;
            if broker.metrics.recording {
                broker.metrics.connect_latency.observe_duration(read_at);
            }
            Ok(client)
        }
        Err(reason) => {
            metrics.packet_sent(mqtt_codec::PacketKind::ConnAck);
            Err(refuse(&mut io, version, reason).await)
        }
    }
}

/// What validation decided about an acceptable CONNECT.
struct Accepted {
    client_id: ByteString,
    assigned: bool,
    session_expiry: u32,
    server_keep_alive: Option<u16>,
    /// The session's state as another broker handed it over (cluster, no clean start).
    transferred: Option<robustmq_proto::broker::SessionState>,
}

/// Validates CONNECT and authenticates; `Err` is the CONNACK reason code.
async fn accept(
    broker: &Arc<Broker>,
    c: &Connect,
    listener: &ListenerContext,
) -> Result<Accepted, ReasonCode> {
    let limits = &broker.config.limits;
    let v5 = c.protocol.is_v5();
    let props = &c.properties;
    if props.receive_maximum == Some(0) || props.maximum_packet_size == Some(0) {
        return Err(ReasonCode::PROTOCOL_ERROR);
    }
    if props.authentication_method.is_some() {
        // Enhanced authentication (AUTH exchanges) is not offered.
        return Err(ReasonCode::BAD_AUTHENTICATION_METHOD);
    }
    let (client_id, assigned) = if c.client_id.is_empty() {
        if c.protocol == ProtocolVersion::V3_1 || (!v5 && !c.clean_start) {
            return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        (assign_client_id(), true)
    } else {
        (c.client_id.clone(), false)
    };
    if client_id.len() > limits.max_client_id_len {
        return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    }
    if let Some(will) = &c.will {
        mqtt_codec::topic::validate_topic_name(&will.topic)
            .map_err(|_| ReasonCode::TOPIC_NAME_INVALID)?;
        if will.qos > broker.maximum_qos() {
            return Err(ReasonCode::QOS_NOT_SUPPORTED);
        }
        if will.retain && !limits.retain_available {
            return Err(ReasonCode::RETAIN_NOT_SUPPORTED);
        }
    }
    let password = c.password.as_deref();
    match broker
        .auth
        .check(c.username.as_deref(), password, listener.anonymous_allowed)
        .await
    {
        AuthResult::Allowed => {}
        AuthResult::BadCredentials => {
            broker.metrics.auth_failures.inc();
            broker.metrics.packet_error("auth_failed");
            tracing::info!(client_id = %client_id, username = c.username.as_deref().unwrap_or(""), "bad username or password");
            return Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD);
        }
        AuthResult::NotAuthorized => {
            broker.metrics.auth_failures.inc();
            broker.metrics.packet_error("auth_failed");
            tracing::info!(client_id = %client_id, "anonymous client refused");
            return Err(ReasonCode::NOT_AUTHORIZED);
        }
    }
    let session_expiry = if v5 {
        props
            .session_expiry_interval
            .unwrap_or(0)
            .min(limits.max_session_expiry_secs)
    } else if c.clean_start {
        0
    } else {
        limits.v3_session_expiry_secs.unwrap_or(u32::MAX)
    };
    let max_ka = limits.max_keep_alive_secs;
    let server_keep_alive =
        (v5 && max_ka > 0 && (c.keep_alive == 0 || c.keep_alive > max_ka)).then_some(max_ka);
    let transferred = match &broker.cluster {
        None => None,
        Some(cluster) => match cluster.claim_session(&client_id, c.clean_start).await {
            Ok(state) => orphan_will(broker, state),
            Err(e) => {
                broker
                    .metrics
                    .server_error(crate::metrics::Operation::connect);
                tracing::warn!(client_id = %client_id, error = %e, "cannot claim the session cluster-wide");
                return Err(ReasonCode::SERVER_UNAVAILABLE);
            }
        },
    };
    Ok(Accepted {
        client_id,
        assigned,
        session_expiry,
        server_keep_alive,
        transferred,
    })
}

/// A session read from the log of a broker that died carries the will of the connection
/// that ended with it. That connection closed without DISCONNECT, so its will goes out
/// now, unless the session lives on and the will had a delay (the client is back within
/// it). A session that had no expiry ended with its connection: nothing is resumed.
fn orphan_will(
    broker: &Arc<Broker>,
    state: Option<robustmq_proto::broker::SessionState>,
) -> Option<robustmq_proto::broker::SessionState> {
    let mut state = state?;
    let ended = state.expiry_interval == 0;
    if let Some(will) = state.will.take() {
        if ended || will.delay_secs == 0 {
            if let Some(will) = crate::cluster::durable::will_from_proto(*will) {
                broker.publish_orphaned_will(will);
            }
        }
    }
    (!ended).then_some(state)
}

fn assign_client_id() -> ByteString {
    let n: u128 = rand::rng().random();
    format!("auto-{n:032x}").into()
}

/// Sends a refusing CONNACK and closes.
async fn refuse<R, W>(io: &mut Io<R, W>, version: ProtocolVersion, reason_code: ReasonCode) -> Close
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code,
        properties: ConnAckProperties::default(),
    });
    io.encode(&connack, version);
    let _ = tokio::time::timeout(Duration::from_secs(1), io.flush()).await;
    Close::Refused(reason_code)
}

fn will_of(client_id: &ByteString, username: Option<ByteString>, will: LastWill) -> Will {
    let p = will.properties;
    Will {
        message: Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties: MessageProperties {
                payload_format_indicator: p.payload_format_indicator,
                expires_at: None,
                content_type: p.content_type,
                response_topic: p.response_topic,
                correlation_data: p.correlation_data,
                user_properties: p.user_properties,
            },
            publisher: client_id.clone(),
            received_at: std::time::Instant::now(),
            remote: false,
            trace: None,
        },
        delay: Duration::from_secs(u64::from(p.will_delay_interval.unwrap_or(0))),
        expiry_interval: p.message_expiry_interval,
        username,
    }
}

/// Opens the session (installing one handed over by another broker), answers CONNACK and
/// resends in-flight deliveries.
async fn open_session<R, W>(
    broker: &Arc<Broker>,
    io: Io<R, W>,
    c: Connect,
    accepted: Accepted,
    peer: SocketAddr,
    metrics: crate::metrics::ConnectionMetrics,
) -> Client<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = &broker.config.limits;
    let version = c.protocol;
    let conn_id = broker.next_conn_id();
    let (kick_tx, kick_rx) = oneshot::channel();
    let mut opened = broker
        .sessions
        .open(&accepted.client_id, c.clean_start, conn_id, kick_tx);
    let fresh = !opened.present;
    if let Some(state) = accepted.transferred {
        if !opened.present && install_transferred(broker, &opened.session, state).await {
            opened.present = true;
        }
    }
    if let Some(old) = &opened.discarded {
        broker.remove_session_routes(old);
    }
    opened.session.lock().expiry_interval = accepted.session_expiry;
    let will = c
        .will
        .map(|w| will_of(&accepted.client_id, c.username.clone(), w));
    journal_session(
        broker,
        &opened.session,
        fresh,
        accepted.session_expiry,
        will.as_ref(),
    )
    .await;
    broker.update_session_gauges();
    tracing::debug!(
        client_id = %accepted.client_id, %peer, version = version.as_str(),
        session_present = opened.present, "client connected"
    );

    let props = &c.properties;
    let keep_alive_secs = accepted.server_keep_alive.unwrap_or(c.keep_alive);
    let requested_expiry = props.session_expiry_interval.unwrap_or(0);
    let max_qos = broker.maximum_qos();
    // 1.5 × the keep alive (MQTT 3.1.2.10).
    let keep_alive =
        (keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1500));
    let mut client = Client {
        broker: broker.clone(),
        io,
        conn_id,
        version,
        client_id: accepted.client_id.clone(),
        username: c.username.clone(),
        session: opened.session,
        generation: opened.generation,
        kick: kick_rx,
        will,
        keep_alive,
        last_read: Instant::now(),
        keep_alive_timer: keep_alive.map(|ka| Box::pin(tokio::time::sleep(ka))),
        shutdown: Box::pin(broker.shutdown.clone().cancelled_owned()),
        session_expiry: accepted.session_expiry,
        connect_expiry_was_zero: requested_expiry == 0,
        send_window: usize::from(
            props
                .receive_maximum
                .unwrap_or(u16::MAX)
                .min(limits.max_inflight),
        ),
        client_max_packet: props.maximum_packet_size.map_or(usize::MAX, |m| m as usize),
        client_alias_max: if version.is_v5() {
            props.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        },
        alias_in: HashMap::new(),
        alias_out: HashMap::new(),
        metrics,
        fanout: Default::default(),
        outbox: Vec::new(),
        written: [0; 3],
        resend: Default::default(),
        max_qos,
        acks: Default::default(),
    };
    let connack = ConnAckProperties {
        session_expiry_interval: (version.is_v5() && accepted.session_expiry != requested_expiry)
            .then_some(accepted.session_expiry),
        receive_maximum: (limits.receive_maximum != u16::MAX).then_some(limits.receive_maximum),
        maximum_qos: (max_qos != QoS::ExactlyOnce).then_some(max_qos),
        retain_available: (!limits.retain_available).then_some(false),
        maximum_packet_size: Some(limits.max_packet_size),
        assigned_client_identifier: accepted.assigned.then(|| accepted.client_id.clone()),
        topic_alias_maximum: (limits.topic_alias_maximum > 0).then_some(limits.topic_alias_maximum),
        wildcard_subscription_available: (!limits.wildcard_subscription_available).then_some(false),
        subscription_identifiers_available: (!limits.subscription_identifiers_available)
            .then_some(false),
        shared_subscription_available: (!limits.shared_subscription_available).then_some(false),
        server_keep_alive: accepted.server_keep_alive,
        response_information: limits
            .response_information
            .as_deref()
            .filter(|_| props.request_response_information == Some(true))
            .map(ByteString::from),
        ..Default::default()
    };
    client.send(Packet::ConnAck(ConnAck {
        session_present: opened.present,
        reason_code: ReasonCode::SUCCESS,
        properties: connack,
    }));
    if opened.present {
        client.resend_inflight();
    }
    client
}

/// With durability on, records the session in this broker's session log before CONNACK:
/// a fresh session first ends whatever the log held for the client id; a persistent one
/// (or one with a will) is `Opened` with its subscriptions and will, and the deliveries
/// it brought from another broker are journaled here. Failures are logged; the session
/// goes on without durability.
pub(crate) async fn journal_session(
    broker: &Arc<Broker>,
    session: &Arc<Session>,
    fresh: bool,
    expiry: u32,
    will: Option<&Will>,
) {
    let Some(log) = broker.session_log() else {
        return;
    };
    if fresh || expiry == 0 {
        log.ended(&session.client_id);
    }
    if expiry == 0 {
        session.set_journaled(false);
        // Recorded only for its will, which the cluster publishes if this broker dies.
        if let Some(will) = will {
            if let Err(e) = log.opened(session, Some(will)).wait().await {
                tracing::error!(client_id = %session.client_id, error = %e, "will not recorded in the session log");
            }
        }
        return;
    }
    // From here on new deliveries are journaled as they are queued; the ones queued
    // before (handed over, recovered) get their records below.
    session.set_journaled(true);
    let mut receipts = vec![log.opened(session, will)];
    {
        let mut st = session.lock();
        let SessionState {
            queue, inflight, ..
        } = &mut *st;
        let unrecorded = queue
            .iter_mut()
            .chain(inflight.values_mut().filter_map(|entry| match entry {
                Inflight::Publish(d) => Some(d),
                Inflight::Released => None,
            }))
            .filter(|d| d.durable.is_none() && d.qos != QoS::AtMostOnce);
        for d in unrecorded {
            let id = log.next_id();
            let target = robustmq_proto::broker::SessionTarget {
                client_id: session.client_id.to_string(),
                qos: d.qos as u32,
                retain: d.retain,
                subscription_ids: d.subscription_ids.clone(),
            };
            receipts.push(log.enqueued(id, &d.message, vec![target]));
            d.durable = Some(id);
        }
    }
    for receipt in receipts {
        if let Err(e) = receipt.wait().await {
            tracing::error!(client_id = %session.client_id, error = %e, "session not recorded in the session log");
            return;
        }
    }
}

/// Installs a session another broker handed over: its queues as they were, and its
/// subscriptions through the router and the route table. False when the state was
/// malformed (the client then starts with an empty session).
pub(crate) async fn install_transferred(
    broker: &Arc<Broker>,
    session: &Arc<crate::session::Session>,
    state: robustmq_proto::broker::SessionState,
) -> bool {
    use crate::cluster::sessions;
    let mut imported = match sessions::import(state, std::time::Instant::now()) {
        Ok(imported) => imported,
        Err(e) => {
            tracing::warn!(client_id = %session.client_id, error = %e, "handed-over session refused");
            return false;
        }
    };
    sessions::install_queues(&mut session.lock(), &mut imported);
    for (key, sub) in imported.subscriptions {
        match broker.subscribe(session, &sub).await {
            Ok(_) => {
                session.lock().subscriptions.insert(key, sub);
            }
            Err(e) => {
                tracing::warn!(client_id = %session.client_id, filter = %key, error = %e, "handed-over subscription dropped")
            }
        }
    }
    broker.update_session_gauges();
    true
}

impl<R, W> Client<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Schedules the resend, in packet-id order, of every delivery left unacknowledged
    /// by the previous connection: PUBLISH with DUP set, or PUBREL (MQTT 4.4).
    fn resend_inflight(&mut self) {
        // Sent by `drain`, within the new connection's Receive Maximum.
        self.resend = self.session.lock().inflight.keys().copied().collect();
    }
}
