//! The publisher and subscriber loops of the native client.

use std::time::Duration;

use mqtt_codec::{Packet, PubResponse, QoS};
use tokio::time::Instant;

use super::native::{ClientError, Connection, Incoming, Pumped};
use super::template::PublishTemplate;
use super::{PublishJob, PublisherOutcome, RunShared, SubscriberOutcome};
use crate::payload::{now_ns, Stamp};
use crate::stats::{LatencyRecorder, Live};

/// Stop encoding publishes while this much waits to be written: it bounds the time a
/// message spends in our own buffer, which would otherwise count as broker latency.
const WRITE_HIGH_WATER: usize = 16 * 1024;

/// Packet identifiers of a publisher's in-flight QoS 1/2 messages.
struct PacketIds {
    /// Per id: 0 free, 1 awaiting PUBACK/PUBREC, 2 awaiting PUBCOMP.
    state: Vec<u8>,
    next: u16,
}

impl PacketIds {
    fn new() -> Self {
        Self {
            state: vec![0; 65_536],
            next: 0,
        }
    }

    /// A free id (the caller keeps fewer than 65,535 in flight).
    fn allocate(&mut self) -> u16 {
        loop {
            self.next = self.next.checked_add(1).unwrap_or(1);
            if self.state[usize::from(self.next)] == 0 {
                self.state[usize::from(self.next)] = 1;
                return self.next;
            }
        }
    }

    /// Moves `id` from state `from` to `to`; false if it was not in `from`.
    fn step(&mut self, id: u16, from: u8, to: u8) -> bool {
        let slot = &mut self.state[usize::from(id)];
        if *slot != from {
            return false;
        }
        *slot = to;
        true
    }
}

/// Half the keep alive: when to ping if nothing else was written.
fn ping_interval(keep_alive: u16) -> Option<Duration> {
    (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 500))
}

/// Publishes `job` on `conn` until its count or duration is reached and the
/// acknowledgements are in (or the drain time runs out).
pub async fn publish(
    mut conn: Connection,
    job: PublishJob,
    keep_alive: u16,
    shared: RunShared,
) -> PublisherOutcome {
    let mut out = PublisherOutcome {
        id: job.id,
        qos: job.qos,
        ..Default::default()
    };
    if let Err(e) = publish_loop(&mut conn, &job, keep_alive, &shared, &mut out).await {
        Live::add(&shared.live.errors, 1);
        out.error = Some(format!("publisher {}: {e}", job.id));
    }
    conn.disconnect().await;
    out
}

async fn publish_loop(
    conn: &mut Connection,
    job: &PublishJob,
    keep_alive: u16,
    shared: &RunShared,
    out: &mut PublisherOutcome,
) -> Result<(), ClientError> {
    let template = PublishTemplate::new(&job.topic, job.qos, job.payload_size, conn.version);
    let qos0 = job.qos == QoS::AtMostOnce;
    let window = if qos0 { usize::MAX } else { job.inflight };
    let ping = ping_interval(keep_alive);
    let start = Instant::now();
    let end = job.duration.map(|d| start + d);
    let count = job.count.unwrap_or(u64::MAX);
    let mut ids = PacketIds::new();
    let (mut seq, mut inflight) = (0u64, 0usize);
    let mut last_write = start;
    let mut drain_until: Option<Instant> = None;
    let (mut reported_sent, mut reported_acked) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        let producing = seq < count && end.is_none_or(|e| now < e);
        let mut next_slot = None;
        if producing {
            let allowed = match job.rate {
                None => u64::MAX,
                Some(r) => (now.duration_since(start).as_secs_f64() * r) as u64 + 1,
            };
            let limit = allowed.min(count);
            while seq < limit && conn.write_buf.len() < WRITE_HIGH_WATER && inflight < window {
                let id = if qos0 { 0 } else { ids.allocate() };
                let ns = now_ns();
                let stamp = Stamp {
                    publisher: job.id,
                    seq,
                    sent_at_ns: ns,
                };
                template.write(&mut conn.write_buf, id, stamp);
                out.sent_per_second.bump(shared.second_of(ns));
                seq += 1;
                if !qos0 {
                    inflight += 1;
                }
            }
            if let (Some(r), true) = (job.rate, seq >= limit && seq < count) {
                next_slot = Some(start + Duration::from_secs_f64(seq as f64 / r));
            }
        } else if drain_until.is_none() {
            drain_until = Some(now + job.drain);
        }
        if qos0 {
            out.acked = seq;
        }
        out.sent = seq;
        Live::add(&shared.live.sent, out.sent - reported_sent);
        Live::add(&shared.live.acked, out.acked - reported_acked);
        (reported_sent, reported_acked) = (out.sent, out.acked);
        if !producing && conn.write_buf.is_empty() && inflight == 0 {
            return Ok(());
        }
        if let Some(until) = drain_until.filter(|&u| now >= u) {
            let _ = until;
            return Err(ClientError::Timeout(
                "acknowledgements still outstanding after the drain time",
            ));
        }
        if !conn.write_buf.is_empty() {
            last_write = now;
        } else if ping.is_some_and(|p| now.duration_since(last_write) >= p) {
            conn.send(&Packet::PingReq);
            last_write = now;
        }
        let deadline = [
            next_slot,
            end.filter(|_| producing),
            drain_until,
            ping.map(|p| last_write + p),
        ]
        .into_iter()
        .flatten()
        .min();
        match conn.pump(deadline, std::future::pending()).await? {
            Pumped::Read => {
                while let Some(packet) = conn.next_packet()? {
                    match packet {
                        Packet::PubAck(r) if ids.step(r.packet_id, 1, 0) => {
                            inflight -= 1;
                            out.acked += 1;
                        }
                        Packet::PubRec(r)
                            if r.reason_code.0 >= 0x80 && ids.step(r.packet_id, 1, 0) =>
                        {
                            // Refused by the broker: the exchange ends here.
                            inflight -= 1;
                        }
                        // A repeated PUBREC (already in state 2) still gets its PUBREL.
                        Packet::PubRec(r)
                            if r.reason_code.0 < 0x80
                                && (ids.step(r.packet_id, 1, 2)
                                    || ids.state[usize::from(r.packet_id)] == 2) =>
                        {
                            conn.send(&Packet::PubRel(PubResponse::new(r.packet_id)));
                        }
                        Packet::PubComp(r) if ids.step(r.packet_id, 2, 0) => {
                            inflight -= 1;
                            out.acked += 1;
                        }
                        Packet::Disconnect(d) => {
                            return Err(ClientError::Refused(d.reason_code));
                        }
                        _ => {}
                    }
                }
            }
            Pumped::Wrote | Pumped::Timer | Pumped::Cancelled => {}
        }
    }
}

/// Reads deliveries on `conn` until the run's subscribers are stopped, acknowledging
/// QoS 1/2 and recording latency and sequence numbers.
pub async fn subscribe(
    mut conn: Connection,
    id: u32,
    keep_alive: u16,
    shared: RunShared,
) -> SubscriberOutcome {
    let mut out = SubscriberOutcome {
        id,
        ..Default::default()
    };
    let mut latency = LatencyRecorder::new(shared.latency.clone());
    if let Err(e) = subscribe_loop(&mut conn, keep_alive, &shared, &mut out, &mut latency).await {
        Live::add(&shared.live.errors, 1);
        out.error = Some(format!("subscriber {id}: {e}"));
    }
    latency.flush();
    out.finish();
    conn.disconnect().await;
    out
}

async fn subscribe_loop(
    conn: &mut Connection,
    keep_alive: u16,
    shared: &RunShared,
    out: &mut SubscriberOutcome,
    latency: &mut LatencyRecorder,
) -> Result<(), ClientError> {
    let ping = ping_interval(keep_alive);
    let mut last_write = Instant::now();
    loop {
        let deadline = ping.map(|p| last_write + p);
        match conn
            .pump(deadline, shared.stop_subscribers.cancelled())
            .await?
        {
            Pumped::Read => {
                let ns = now_ns();
                let second = shared.second_of(ns);
                let mut received = 0;
                while let Some(incoming) = conn.next_incoming()? {
                    let packet = match incoming {
                        Incoming::Publish {
                            qos,
                            packet_id,
                            stamp,
                        } => {
                            received += 1;
                            record(out, latency, stamp, qos, ns, second);
                            match qos {
                                QoS::AtMostOnce => {}
                                QoS::AtLeastOnce => {
                                    conn.send(&Packet::PubAck(PubResponse::new(packet_id)))
                                }
                                QoS::ExactlyOnce => {
                                    conn.send(&Packet::PubRec(PubResponse::new(packet_id)))
                                }
                            }
                            continue;
                        }
                        Incoming::Other(packet) => packet,
                    };
                    match *packet {
                        Packet::PubRel(r) => {
                            conn.send(&Packet::PubComp(PubResponse::new(r.packet_id)))
                        }
                        Packet::Disconnect(d) => return Err(ClientError::Refused(d.reason_code)),
                        _ => {}
                    }
                }
                Live::add(&shared.live.received, received);
                if !conn.write_buf.is_empty() {
                    last_write = Instant::now();
                }
            }
            Pumped::Timer => {
                conn.send(&Packet::PingReq);
                last_write = Instant::now();
            }
            Pumped::Wrote => {}
            Pumped::Cancelled => return Ok(()),
        }
    }
}

/// Accounts one received payload (its header, when it is one of ours).
pub fn record(
    out: &mut SubscriberOutcome,
    latency: &mut LatencyRecorder,
    stamp: Option<Stamp>,
    qos: QoS,
    received_ns: u64,
    second: usize,
) {
    out.last_received_ns = out.last_received_ns.max(received_ns);
    match stamp {
        Some(stamp) => {
            let us = received_ns.saturating_sub(stamp.sent_at_ns) / 1_000;
            latency.record(qos, second, us);
            out.record(stamp, qos);
        }
        None => out.foreign += 1,
    }
}
