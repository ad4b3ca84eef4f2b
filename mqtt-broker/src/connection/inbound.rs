//! Packets from the client after CONNECT: PUBLISH and its acknowledgements,
//! SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT and AUTH.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_codec::{
    ByteString, Disconnect, Packet, PubResponse, Publish, QoS, ReasonCode, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use opentelemetry::trace::FutureExt as _;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Client, Close};
use crate::acl::Action;
use crate::cluster::durable::{LogError, Pending};
use crate::message::{Message, MessageProperties};
use crate::metrics::DropReason;
use crate::session::{Inflight, Subscription};

/// A QoS 1/2 PUBLISH's acknowledgement, with whether its message became durable.
pub(crate) struct DurableAck {
    pub(super) qos: QoS,
    /// When the PUBLISH was read.
    pub(super) read_at: Instant,
    pub(super) packet_id: u16,
    pub(super) reason: ReasonCode,
    pub(super) result: Result<(), LogError>,
}
use crate::sys::SysStats;

impl<R, W> Client<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Dispatches one packet.
    pub(super) async fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        self.metrics.packet_received(packet.kind());
        match packet {
            Packet::Publish(p) => self.handle_publish(p).await,
            Packet::PubAck(r) => self.handle_puback(r),
            Packet::PubRec(r) => self.handle_pubrec(r),
            Packet::PubRel(r) => self.handle_pubrel(r),
            Packet::PubComp(r) => self.handle_pubcomp(r),
            Packet::Subscribe(s) => {
                // It may wait on the placement center: wake the subscribers of the
                // messages published before it first.
                self.fanout.wake();
                self.handle_subscribe(s).await
            }
            Packet::Unsubscribe(u) => self.handle_unsubscribe(u),
            Packet::PingReq => {
                self.send(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.handle_disconnect(d),
            Packet::Auth(_) => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH without an authentication method",
            )),
            Packet::Connect(_) => Err(self.violation(ReasonCode::PROTOCOL_ERROR, "second CONNECT")),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(self.violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "server-to-client packet from a client",
                ))
            }
        }
    }

    fn violation(&self, reason: ReasonCode, detail: &'static str) -> Close {
        self.broker.metrics.packet_error("protocol_error");
        Close::protocol(reason, detail)
    }

    /// Resolves an MQTT 5 topic alias (§3.3.2.3.4).
    fn resolve_topic(&mut self, p: &Publish) -> Result<ByteString, Close> {
        let Some(alias) = p.properties.topic_alias else {
            if p.topic.is_empty() {
                return Err(self.violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "empty topic without topic alias",
                ));
            }
            return Ok(p.topic.clone());
        };
        if alias == 0 || alias > self.broker.config.limits.topic_alias_maximum {
            return Err(self.violation(ReasonCode::TOPIC_ALIAS_INVALID, "topic alias out of range"));
        }
        self.metrics.alias_in.inc();
        if p.topic.is_empty() {
            return match self.alias_in.get(&alias) {
                Some(topic) => Ok(topic.clone()),
                None => Err(self.violation(ReasonCode::PROTOCOL_ERROR, "unknown topic alias")),
            };
        }
        self.alias_in.insert(alias, p.topic.clone());
        Ok(p.topic.clone())
    }

    async fn handle_publish(&mut self, p: Publish) -> Result<(), Close> {
        // The time its bytes were read: one clock read per read batch, not per packet.
        let read_at = self.last_read.into_std();
        let topic = self.resolve_topic(&p)?;
        if p.qos > self.max_qos {
            return Err(self.violation(ReasonCode::QOS_NOT_SUPPORTED, "QoS above maximum"));
        }
        if p.retain && !self.broker.config.limits.retain_available {
            return Err(self.violation(ReasonCode::RETAIN_NOT_SUPPORTED, "retain not available"));
        }
        self.metrics.message_received(p.qos);
        SysStats::add(&self.broker.stats.messages_received, 1);
        let packet_id = p.packet_id.unwrap_or(0);

        if p.qos == QoS::ExactlyOnce && self.session.lock().incoming_qos2.contains(&packet_id) {
            // A retransmission of a QoS 2 PUBLISH we already accepted: acknowledge
            // again, do not deliver twice (MQTT 4.3.3).
            self.send(Packet::PubRec(PubResponse::new(packet_id)));
            return Ok(());
        }

        if p.qos == QoS::ExactlyOnce
            && self.session.lock().incoming_qos2.len()
                >= usize::from(self.broker.config.limits.receive_maximum)
        {
            return Err(self.violation(
                ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                "too many QoS 2 in flight",
            ));
        }
        let mut reason = self.check_publish(&topic, &p);
        let mut pending = Pending::default();
        if reason.is_success() {
            let mut message = self.message_of(topic, p.qos, p.retain, p.payload, p.properties);
            // Open until the message was handed to every local session and peer; entered
            // while publishing, so that a placement-center call it makes (a retained
            // message) is part of the message's trace.
            let span = self.broker.tracer.publish_span(&mut message);
            let message = Arc::new(message);
            let queued = match self.broker.publish_now(&message, &mut self.fanout) {
                Ok(published) => published,
                // Boxed: the rare publish that waits (retained, or held up by a full
                // forward queue) must not make every PUBLISH's future as large as its own.
                Err(rest) => {
                    let publish =
                        Box::pin(self.broker.publish_rest(message, rest, &mut self.fanout));
                    match &span {
                        Some(span) => publish.with_context(span.context()).await,
                        None => publish.await,
                    }
                }
            };
            drop(span);
            if queued.queued == 0 {
                reason = ReasonCode::NO_MATCHING_SUBSCRIBERS;
            }
            pending = queued.pending;
        } else {
            self.broker.metrics.dropped(p.qos, DropReason::acl_denied);
        }
        if p.qos == QoS::AtMostOnce {
            return Ok(());
        }
        if p.qos == QoS::ExactlyOnce && reason.is_success() {
            // Known from now on: a retransmission is not published again.
            self.session.lock().incoming_qos2.insert(packet_id);
        }
        let ack = DurableAck {
            qos: p.qos,
            read_at,
            packet_id,
            reason,
            result: Ok(()),
        };
        if pending.is_empty() && self.acks.is_empty() {
            return self.acknowledge(ack);
        }
        self.acks.push(ack, pending);
        Ok(())
    }

    /// Sends the PUBACK/PUBREC of a QoS 1/2 PUBLISH whose message is durable, or tells
    /// the client it is not.
    pub(super) fn acknowledge(&mut self, ack: DurableAck) -> Result<(), Close> {
        let v5 = self.version.is_v5();
        let mut reason = ack.reason;
        if let Err(e) = &ack.result {
            self.broker
                .metrics
                .server_error(crate::metrics::Operation::publish);
            tracing::warn!(client_id = %self.client_id, error = %e, "PUBLISH not acknowledged: the message could not be made durable");
            if ack.qos == QoS::ExactlyOnce {
                self.session.lock().incoming_qos2.remove(&ack.packet_id);
            }
            if !v5 {
                return Err(Close::NotDurable);
            }
            reason = ReasonCode::UNSPECIFIED_ERROR;
        }
        // MQTT 3.x has no reason codes: the client is acknowledged either way.
        let reason = if v5 { reason } else { ReasonCode::SUCCESS };
        let response = PubResponse::with_reason(ack.packet_id, reason);
        self.metrics.publish_acknowledged(ack.qos, ack.read_at);
        self.send(match ack.qos {
            QoS::ExactlyOnce => Packet::PubRec(response),
            _ => Packet::PubAck(response),
        });
        Ok(())
    }

    /// Authorisation and payload checks; a failure reason (≥ 0x80) means do not publish.
    fn check_publish(&self, topic: &str, p: &Publish) -> ReasonCode {
        if topic.starts_with("$SYS") {
            return ReasonCode::NOT_AUTHORIZED;
        }
        if !self.broker.acl.check(
            self.username.as_deref(),
            &self.client_id,
            Action::Publish,
            topic,
        ) {
            self.broker.metrics.packet_error("acl_denied");
            return ReasonCode::NOT_AUTHORIZED;
        }
        if p.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&p.payload).is_err()
        {
            self.broker.metrics.packet_error("payload_format_invalid");
            return ReasonCode::PAYLOAD_FORMAT_INVALID;
        }
        ReasonCode::SUCCESS
    }

    fn message_of(
        &self,
        topic: ByteString,
        qos: QoS,
        retain: bool,
        payload: bytes::Bytes,
        props: mqtt_codec::PublishProperties,
    ) -> Message {
        let received_at = self.last_read.into_std();
        Message {
            topic,
            payload,
            qos,
            retain,
            properties: MessageProperties {
                payload_format_indicator: props.payload_format_indicator,
                expires_at: props
                    .message_expiry_interval
                    .map(|secs| received_at + Duration::from_secs(u64::from(secs))),
                content_type: props.content_type,
                response_topic: props.response_topic,
                correlation_data: props.correlation_data,
                user_properties: props.user_properties,
            },
            publisher: self.client_id.clone(),
            received_at,
            remote: false,
            trace: None,
        }
    }

    fn handle_puback(&mut self, r: PubResponse) -> Result<(), Close> {
        let mut st = self.session.lock();
        match st.inflight.get(&r.packet_id) {
            Some(Inflight::Publish(d)) if d.qos == QoS::AtLeastOnce => {
                let durable = d.durable;
                st.inflight.remove(&r.packet_id);
                drop(st);
                self.delivered(durable);
            }
            _ => {
                drop(st);
                self.broker.metrics.packet_error("unknown_packet_id");
            }
        }
        Ok(())
    }

    fn handle_pubrec(&mut self, r: PubResponse) -> Result<(), Close> {
        let id = r.packet_id;
        let mut st = self.session.lock();
        let reply = match st.inflight.get(&id) {
            Some(Inflight::Publish(d)) if d.qos == QoS::ExactlyOnce => {
                // Received or refused, the message needs no recovery any more.
                self.delivered(d.durable);
                if r.reason_code.is_success() {
                    st.inflight.insert(id, Inflight::Released);
                    Some(ReasonCode::SUCCESS)
                } else {
                    // The receiver refused the message; the exchange ends here.
                    st.inflight.remove(&id);
                    None
                }
            }
            Some(Inflight::Released) => Some(ReasonCode::SUCCESS),
            _ => Some(if self.version.is_v5() {
                ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
            } else {
                ReasonCode::SUCCESS
            }),
        };
        drop(st);
        if let Some(reason) = reply {
            self.send(Packet::PubRel(PubResponse::with_reason(id, reason)));
        }
        Ok(())
    }

    /// The session log, when this session is journaled.
    fn journaled_log(&self) -> Option<Arc<crate::cluster::durable::SessionLog>> {
        self.broker
            .session_log()
            .filter(|_| self.session.is_journaled())
            .cloned()
    }

    /// Records in the session log that a journaled delivery was acknowledged.
    pub(super) fn delivered(&self, durable: Option<crate::cluster::durable::DurableId>) {
        if let (Some(id), Some(log)) = (durable, self.broker.session_log()) {
            log.done(&self.client_id, id);
        }
    }

    fn handle_pubrel(&mut self, r: PubResponse) -> Result<(), Close> {
        let known = self.session.lock().incoming_qos2.remove(&r.packet_id);
        let reason = if known || !self.version.is_v5() {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.send(Packet::PubComp(PubResponse::with_reason(
            r.packet_id,
            reason,
        )));
        Ok(())
    }

    fn handle_pubcomp(&mut self, r: PubResponse) -> Result<(), Close> {
        let mut st = self.session.lock();
        if matches!(st.inflight.get(&r.packet_id), Some(Inflight::Released)) {
            st.inflight.remove(&r.packet_id);
        } else {
            drop(st);
            self.broker.metrics.packet_error("unknown_packet_id");
        }
        Ok(())
    }

    async fn handle_subscribe(&mut self, s: Subscribe) -> Result<(), Close> {
        if !self.session.lock().is_owned_by(self.conn_id) {
            // Taken over: routes added now would point at a session that moved on.
            return Err(Close::TakenOver);
        }
        let limits = &self.broker.config.limits;
        if s.properties.subscription_identifier.is_some()
            && !limits.subscription_identifiers_available
        {
            return Err(self.violation(
                ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                "subscription identifiers not available",
            ));
        }
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut added = Vec::new();
        for f in &s.filters {
            match self
                .subscribe_one(f, s.properties.subscription_identifier)
                .await?
            {
                Ok((sub, existed)) => {
                    codes.push(ReasonCode(sub.options.qos as u8));
                    added.push((sub, existed));
                }
                Err(code) => {
                    self.broker.metrics.packet_error("subscribe_refused");
                    codes.push(code);
                }
            }
        }
        self.broker.update_session_gauges();
        if let Some(log) = self.journaled_log() {
            if !added.is_empty() {
                if let Err(e) = log.opened(&self.session, self.will.as_ref()).wait().await {
                    tracing::error!(client_id = %self.client_id, error = %e, "subscriptions not recorded in the session log");
                }
            }
        }
        self.send(Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        }));
        // Retained messages follow the SUBACK (they are queued, and the queue is
        // drained after the SUBACK in the write buffer).
        for (sub, existed) in added {
            self.broker.deliver_retained(&self.session, &sub, existed);
        }
        Ok(())
    }

    /// One filter of a SUBSCRIBE: `Ok(Err(code))` refuses just this filter; `Err`
    /// closes the connection.
    #[allow(clippy::type_complexity)]
    async fn subscribe_one(
        &mut self,
        f: &SubscribeFilter,
        id: Option<u32>,
    ) -> Result<Result<(Subscription, bool), ReasonCode>, Close> {
        let limits = &self.broker.config.limits;
        let (group, filter) = match mqtt_codec::topic::parse_shared(&f.filter) {
            Ok(Some(shared)) => (
                Some(ByteString::from(shared.group)),
                ByteString::from(shared.filter),
            ),
            Ok(None) => (None, f.filter.clone()),
            Err(_) => return Ok(Err(ReasonCode::TOPIC_FILTER_INVALID)),
        };
        if group.is_some() {
            if !limits.shared_subscription_available {
                return Ok(Err(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED));
            }
            if f.options.no_local && self.version.is_v5() {
                return Err(self.violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "No Local on a shared subscription",
                ));
            }
        }
        if mqtt_codec::topic::validate_topic_filter(&filter).is_err() {
            return Ok(Err(ReasonCode::TOPIC_FILTER_INVALID));
        }
        if !limits.wildcard_subscription_available && filter.contains(['+', '#']) {
            return Ok(Err(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED));
        }
        if !self.broker.acl.check(
            self.username.as_deref(),
            &self.client_id,
            Action::Subscribe,
            &filter,
        ) {
            return Ok(Err(ReasonCode::NOT_AUTHORIZED));
        }
        let sub = Subscription {
            share_group: group,
            filter,
            options: SubscriptionOptions {
                qos: f.options.qos.min(self.max_qos),
                ..f.options
            },
            id,
        };
        let existed = match self.broker.subscribe(&self.session, &sub).await {
            Ok(existed) => existed,
            Err(e) => {
                tracing::warn!(client_id = %self.client_id, error = %e, "subscription refused: route table unavailable");
                return Ok(Err(ReasonCode::UNSPECIFIED_ERROR));
            }
        };
        self.session
            .lock()
            .subscriptions
            .insert(f.filter.clone(), sub.clone());
        Ok(Ok((sub, existed)))
    }

    fn handle_unsubscribe(&mut self, u: Unsubscribe) -> Result<(), Close> {
        let mut codes = Vec::with_capacity(u.filters.len());
        for filter in &u.filters {
            if !valid_filter(filter) {
                codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            let removed = self.session.lock().subscriptions.remove(filter);
            let code = match removed {
                Some(sub) => {
                    self.broker.unsubscribe(&self.client_id, &sub);
                    ReasonCode::SUCCESS
                }
                None => ReasonCode::NO_SUBSCRIPTION_EXISTED,
            };
            codes.push(code);
        }
        self.broker.update_session_gauges();
        if let Some(log) = self.journaled_log() {
            // Nobody waits: at worst a recovered session keeps a filter it dropped.
            drop(log.opened(&self.session, self.will.as_ref()));
        }
        self.send(Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        }));
        Ok(())
    }

    fn handle_disconnect(&mut self, d: Disconnect) -> Result<(), Close> {
        if let Some(expiry) = d.properties.session_expiry_interval {
            if self.connect_expiry_was_zero && expiry != 0 {
                return Err(self.violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "session expiry raised from 0 at DISCONNECT",
                ));
            }
            self.session_expiry = expiry.min(self.broker.config.limits.max_session_expiry_secs);
        }
        Err(Close::ClientDisconnect {
            publish_will: d.reason_code == ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        })
    }
}

/// A filter that could have been subscribed: a valid topic filter, or a well-formed
/// `$share/{group}/{filter}`.
fn valid_filter(filter: &str) -> bool {
    match mqtt_codec::topic::parse_shared(filter) {
        Ok(Some(_)) => true,
        Ok(None) => mqtt_codec::topic::validate_topic_filter(filter).is_ok(),
        Err(_) => false,
    }
}
