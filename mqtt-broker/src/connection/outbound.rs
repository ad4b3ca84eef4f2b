//! Deliveries to the client: draining the session queue within the flow-control
//! window, packet ids, outgoing topic aliases and the client's Maximum Packet Size.

use std::time::Instant;

use mqtt_codec::{ByteString, Packet, PubResponse, PublishProperties, PublishRef, QoS};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Client;
use crate::message::Delivery;
use crate::message_trace::{self, MessageSpan};
use crate::metrics::DropReason;
use crate::session::Inflight;
use crate::sys::SysStats;

/// Stop encoding deliveries once this much is waiting to be written; the rest waits
/// for the next round, so a slow reader cannot make the buffer grow without bound.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// QoS 0 deliveries taken off the session queue at a time, to be written without its lock.
const QOS0_RUN: usize = 64;

impl<R, W> Client<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Moves queued deliveries into the write buffer while the in-flight window allows.
    /// Returns true when more could be sent right away (the buffer filled up first).
    pub(super) fn drain(&mut self) -> bool {
        let more = self.drain_queue();
        // Counted once per batch: a shared counter per message costs a contended atomic
        // add per delivery.
        let written = std::mem::take(&mut self.written);
        for (qos, n) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .zip(written)
        {
            if n > 0 {
                self.metrics.messages_delivered(qos, n);
                SysStats::add(&self.broker.stats.messages_sent, n);
            }
        }
        if written.iter().any(|n| *n > 0) {
            self.metrics.deliveries_written();
        }
        more
    }

    fn drain_queue(&mut self) -> bool {
        let now = Instant::now();
        let session = self.session.clone();
        let mut st = session.lock();
        if !st.is_owned_by(self.conn_id) {
            // Taken over: the new connection delivers; this one is about to close.
            return false;
        }
        while let Some(&id) = self.resend.front() {
            if st.inflight_len().saturating_sub(self.resend.len()) >= self.send_window {
                return false;
            }
            if self.io.write_buf.len() >= WRITE_HIGH_WATER {
                return true;
            }
            self.resend.pop_front();
            match st.inflight.get(&id).cloned() {
                Some(Inflight::Publish(delivery)) => {
                    // Not sent when too large for this client's Maximum Packet Size.
                    let sent = self.write_publish(&delivery, Some(id), true, now, None);
                    if !sent {
                        st.inflight.remove(&id);
                    }
                }
                Some(Inflight::Released) => self.send(Packet::PubRel(PubResponse::new(id))),
                // Acknowledged before we got to resend it.
                None => {}
            }
        }
        loop {
            let Some(front) = st.queue.front() else {
                return false;
            };
            if front.qos == QoS::AtMostOnce {
                // A run of QoS 0 deliveries is taken out and written without the
                // session's lock. Held while encoding (some 1,000 deliveries to fill the
                // buffer), the lock made every publisher enqueueing to this session wait
                // on the other core, asleep in the kernel: in a QoS 0 fan-out that was
                // most of the broker's context switches.
                let mut run = std::mem::take(&mut self.outbox);
                while run.len() < QOS0_RUN
                    && st.queue.front().is_some_and(|d| d.qos == QoS::AtMostOnce)
                {
                    run.extend(st.queue.pop_front());
                }
                drop(st);
                self.write_qos0(&mut run, now);
                st = session.lock();
                let full = !run.is_empty();
                // What did not fit goes back to the front, in order.
                while let Some(delivery) = run.pop() {
                    st.queue.push_front(delivery);
                }
                self.outbox = run;
                if full {
                    return true;
                }
                if !st.is_owned_by(self.conn_id) {
                    return false;
                }
                continue;
            }
            if st.inflight_len() >= self.send_window {
                // Wait for acknowledgements; handling them runs this again.
                return false;
            }
            if self.io.write_buf.len() >= WRITE_HIGH_WATER {
                return true;
            }
            let Some(mut delivery) = st.queue.pop_front() else {
                return false;
            };
            // A traced delivery's span ends here, once it is written (or dropped).
            let span = delivery.span.take();
            if self.dropped_expired(&delivery, now) {
                continue;
            }
            let packet_id = if delivery.qos == QoS::AtMostOnce {
                None
            } else {
                match st.allocate_packet_id() {
                    Some(id) => Some(id),
                    None => {
                        st.queue.push_front(delivery);
                        return false;
                    }
                }
            };
            if self.write_publish(&delivery, packet_id, false, now, span.as_deref()) {
                if let Some(id) = packet_id {
                    st.inflight.insert(id, Inflight::Publish(delivery));
                }
            } else {
                self.delivered(delivery.durable);
            }
        }
    }

    /// True when `delivery` expired before it could be written: it is counted as
    /// dropped and is done with.
    fn dropped_expired(&self, delivery: &Delivery, now: Instant) -> bool {
        if !delivery.message.is_expired(now) {
            return false;
        }
        self.broker
            .metrics
            .dropped(delivery.qos, DropReason::expired);
        self.delivered(delivery.durable);
        true
    }

    /// Writes QoS 0 deliveries from the front of `run` until the write buffer reaches its
    /// high-water mark; those written (or dropped) leave `run`.
    fn write_qos0(&mut self, run: &mut Vec<Delivery>, now: Instant) {
        let mut done = 0;
        for delivery in run.iter_mut() {
            if self.io.write_buf.len() >= WRITE_HIGH_WATER {
                break;
            }
            done += 1;
            let span = delivery.span.take();
            if self.dropped_expired(delivery, now) {
                continue;
            }
            if !self.write_publish(delivery, None, false, now, span.as_deref()) {
                self.delivered(delivery.durable);
            }
        }
        // Dropped here, outside the session's lock.
        run.drain(..done);
    }

    /// Encodes one delivery as a PUBLISH for this client's protocol version. Returns
    /// false when it was dropped for exceeding the client's Maximum Packet Size. `span`
    /// is the delivery's own span when the message is traced.
    pub(super) fn write_publish(
        &mut self,
        d: &Delivery,
        packet_id: Option<u16>,
        dup: bool,
        now: Instant,
        span: Option<&MessageSpan>,
    ) -> bool {
        let msg = &d.message;
        let mut properties = PublishProperties::default();
        if self.version.is_v5() {
            let p = &msg.properties;
            properties = PublishProperties {
                payload_format_indicator: p.payload_format_indicator,
                message_expiry_interval: msg.remaining_expiry(now),
                topic_alias: None,
                response_topic: p.response_topic.clone(),
                correlation_data: p.correlation_data.clone(),
                user_properties: match span {
                    Some(span) if self.broker.config.message_tracing.reparent => {
                        message_trace::reparented(&p.user_properties, span)
                    }
                    _ => p.user_properties.clone(),
                },
                subscription_identifiers: d.subscription_ids.clone(),
                content_type: p.content_type.clone(),
            };
        }
        // Encoded from the shared message by reference: no per-subscriber copy of the
        // topic or payload handles, no owned packet to build and drop.
        fn publish<'a>(
            d: &'a Delivery,
            dup: bool,
            packet_id: Option<u16>,
            topic: &'a str,
            properties: &'a PublishProperties,
        ) -> PublishRef<'a> {
            PublishRef {
                dup,
                qos: d.qos,
                retain: d.retain,
                topic,
                packet_id,
                payload: &d.message.payload,
                properties,
            }
        }
        // Checked with the full topic: an alias only makes the packet smaller. Without a
        // client Maximum Packet Size (usize::MAX) nothing can exceed it: skip the sizing.
        if self.client_max_packet != usize::MAX
            && mqtt_codec::publish_encoded_len(
                publish(d, dup, packet_id, &msg.topic, &properties),
                self.version,
            ) > self.client_max_packet
        {
            self.broker.metrics.dropped(d.qos, DropReason::too_large);
            return false;
        }
        let mut topic: &str = &msg.topic;
        if self.client_alias_max > 0 {
            if let Some((alias, known)) = self.topic_alias(&msg.topic) {
                properties.topic_alias = Some(alias);
                if known {
                    topic = "";
                }
            }
        }
        self.io
            .encode_publish(publish(d, dup, packet_id, topic, &properties), self.version);
        self.written[d.qos as usize] += 1;
        if !d.replay {
            self.metrics.delivery_latency(
                d.qos,
                msg.remote,
                now.saturating_duration_since(msg.received_at).as_secs_f64(),
                span.map(MessageSpan::context).as_ref(),
            );
        }
        true
    }

    /// The outgoing topic alias for `topic`: an existing one (true: send an empty
    /// topic) or a new one while the client's Topic Alias Maximum allows (false: send
    /// the topic with it, which sets it up).
    fn topic_alias(&mut self, topic: &ByteString) -> Option<(u16, bool)> {
        if let Some(alias) = self.alias_out.get(topic) {
            self.metrics.alias_out.inc();
            return Some((*alias, true));
        }
        if self.alias_out.len() >= usize::from(self.client_alias_max) {
            return None;
        }
        let alias = self.alias_out.len() as u16 + 1;
        self.alias_out.insert(topic.clone(), alias);
        self.metrics.alias_out.inc();
        Some((alias, false))
    }
}
