//! The same publisher and subscriber roles driven through rumqttc (MQTT 3.1.1), kept to
//! measure whether the client library is the bottleneck (see benches/README.md).

use std::time::Duration;

use mqtt_codec::QoS;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing};
use tokio::time::Instant;

use super::{ClientOptions, PublishJob, PublisherOutcome, RunShared, SubscriberOutcome};
use crate::payload::{build, now_ns, Stamp};
use crate::stats::{LatencyRecorder, Live};

/// A connected rumqttc client and its event loop.
pub struct RumqttcConn {
    client: AsyncClient,
    eventloop: EventLoop,
}

fn qos(q: QoS) -> rumqttc::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos_back(q: rumqttc::QoS) -> QoS {
    match q {
        rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// Connects and waits for the CONNACK.
pub async fn connect(opts: &ClientOptions, inflight: usize) -> anyhow::Result<RumqttcConn> {
    let mut o = MqttOptions::new(
        &opts.client_id,
        opts.addr.ip().to_string(),
        opts.addr.port(),
    );
    o.set_keep_alive(Duration::from_secs(u64::from(opts.keep_alive.max(5))))
        .set_clean_session(opts.clean_start)
        .set_inflight(inflight.min(u16::MAX as usize) as u16)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 1024);
    tokio::time::timeout(opts.connect_timeout, async {
        loop {
            if let Event::Incoming(Incoming::ConnAck(_)) = eventloop.poll().await? {
                return Ok::<_, anyhow::Error>(());
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("connect timed out"))??;
    Ok(RumqttcConn { client, eventloop })
}

impl RumqttcConn {
    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        q: QoS,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.client.subscribe(filter, qos(q)).await?;
        tokio::time::timeout(timeout, async {
            loop {
                if let Event::Incoming(Incoming::SubAck(_)) = self.eventloop.poll().await? {
                    return Ok::<_, anyhow::Error>(());
                }
            }
        })
        .await
        .map_err(|_| anyhow::anyhow!("subscribe timed out"))?
    }
}

/// Publishes `job`: a producer task feeds rumqttc's request channel while this task
/// polls the event loop and counts acknowledgements.
pub async fn publish(conn: RumqttcConn, job: PublishJob, shared: RunShared) -> PublisherOutcome {
    let RumqttcConn {
        client,
        mut eventloop,
    } = conn;
    let mut out = PublisherOutcome {
        id: job.id,
        qos: job.qos,
        ..Default::default()
    };
    let producer = {
        let (client, job, shared) = (client.clone(), job.clone(), shared.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let end = job.duration.map(|d| start + d);
            let count = job.count.unwrap_or(u64::MAX);
            let mut per_second = crate::stats::PerSecond::default();
            let mut seq = 0;
            while seq < count && end.is_none_or(|e| Instant::now() < e) {
                if let Some(r) = job.rate {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / r)).await;
                }
                let ns = now_ns();
                let stamp = Stamp {
                    publisher: job.id,
                    seq,
                    sent_at_ns: ns,
                };
                let payload = build(job.payload_size, stamp);
                if client
                    .publish_bytes(job.topic.clone(), qos(job.qos), false, payload)
                    .await
                    .is_err()
                {
                    break;
                }
                per_second.bump(shared.second_of(ns));
                seq += 1;
            }
            (seq, per_second)
        })
    };
    let mut producer = Some(producer);
    let mut produced: Option<u64> = None;
    let mut drain_until = None;
    let qos0 = job.qos == QoS::AtMostOnce;
    loop {
        if let Some(total) = produced {
            if out.sent >= total && (qos0 || out.acked >= out.sent) {
                break;
            }
            let until = *drain_until.get_or_insert(Instant::now() + job.drain);
            if Instant::now() >= until {
                out.error = Some(format!(
                    "publisher {}: acknowledgements outstanding after the drain time",
                    job.id
                ));
                break;
            }
        }
        let event = tokio::select! {
            e = eventloop.poll() => e,
            done = async { producer.as_mut().expect("guarded").await }, if producer.is_some() => {
                producer = None;
                match done {
                    Ok((n, per_second)) => {
                        produced = Some(n);
                        out.sent_per_second = per_second;
                    }
                    Err(e) => out.error = Some(format!("publisher {}: {e}", job.id)),
                }
                continue;
            }
            _ = tokio::time::sleep(Duration::from_millis(100)), if produced.is_some() => continue,
        };
        match event {
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                out.sent += 1;
                Live::add(&shared.live.sent, 1);
                if qos0 {
                    out.acked += 1;
                    Live::add(&shared.live.acked, 1);
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(_) | Incoming::PubComp(_))) => {
                out.acked += 1;
                Live::add(&shared.live.acked, 1);
            }
            Ok(_) => {}
            Err(e) => {
                out.error = Some(format!("publisher {}: {e}", job.id));
                break;
            }
        }
    }
    if out.error.is_some() {
        Live::add(&shared.live.errors, 1);
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    out
}

/// Reads deliveries until the run's subscribers are stopped.
pub async fn subscribe(conn: RumqttcConn, id: u32, shared: RunShared) -> SubscriberOutcome {
    let RumqttcConn {
        client,
        mut eventloop,
    } = conn;
    let mut out = SubscriberOutcome {
        id,
        ..Default::default()
    };
    let mut latency = LatencyRecorder::new(shared.latency.clone());
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = shared.stop_subscribers.cancelled() => break,
        };
        match event {
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                let ns = now_ns();
                super::roles::record(
                    &mut out,
                    &mut latency,
                    crate::payload::read_header(&p.payload),
                    qos_back(p.qos),
                    ns,
                    shared.second_of(ns),
                );
                Live::add(&shared.live.received, 1);
            }
            Ok(_) => {}
            Err(e) => {
                Live::add(&shared.live.errors, 1);
                out.error = Some(format!("subscriber {id}: {e}"));
                break;
            }
        }
    }
    latency.flush();
    out.finish();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    out
}
