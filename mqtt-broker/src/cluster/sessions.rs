//! Sessions across the cluster: which broker owns a client's session, and moving a
//! session to the broker the client reconnects to.
//!
//! The owner of each client id is a record under `/mqtt/sessions/{client_id}` (node and
//! epoch). A broker accepting a CONNECT claims the record with a compare-and-swap on its
//! revision; when another live broker owned it, that broker is asked to hand the
//! session over (`TakeSession`): it disconnects the client there (session taken over),
//! forgets the session and, unless the new connection asked for a clean start, sends
//! its state (subscriptions, queued and in-flight deliveries, unreleased QoS 2 ids).
//! A session whose owner is gone (its broker crashed) is rebuilt from that broker's
//! session log in the journal, with durability on (`super::durable`, `super::claim`).

use std::sync::Arc;
use std::time::Instant;

use mqtt_codec::{ByteString, QoS, RetainHandling, SubscriptionOptions};
use placement_client::{pb, PlacementClient};
use prost::Message as _;
use robustmq_proto::broker as broker_pb;

use super::convert::{self, DecodeError};
use crate::message::Delivery;
use crate::session::{Inflight, Session, SessionState, Subscription};

/// Where session owners are recorded.
pub const SESSIONS_PREFIX: &str = "/mqtt/sessions/";

/// The record key of `client_id`.
pub fn key(client_id: &str) -> Vec<u8> {
    format!("{SESSIONS_PREFIX}{client_id}").into_bytes()
}

/// The owner record of `client_id` as stored, with the revision it was read at (0:
/// no record).
pub async fn read_owner(
    client: &PlacementClient,
    client_id: &str,
) -> placement_client::Result<(i64, Option<broker_pb::SessionOwner>)> {
    let kv = client.get(key(client_id)).await?;
    Ok(match kv {
        None => (0, None),
        Some(kv) => (
            kv.mod_revision,
            broker_pb::SessionOwner::decode(&kv.value[..]).ok(),
        ),
    })
}

/// Writes `owner` as the owner of `client_id` if the record is still at `revision`;
/// false when someone else changed it first.
pub async fn write_owner(
    client: &PlacementClient,
    client_id: &str,
    revision: i64,
    owner: &broker_pb::SessionOwner,
) -> placement_client::Result<bool> {
    use pb::request_op::Request;
    let key = key(client_id);
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            key: key.clone(),
            result: pb::compare::Result::Equal as i32,
            target: Some(pb::compare::Target::ModRevision(revision)),
        }],
        success: vec![pb::RequestOp {
            request: Some(Request::Put(pb::PutRequest {
                key,
                value: owner.encode_to_vec(),
                lease: 0,
                prev_kv: false,
            })),
        }],
        failure: Vec::new(),
    };
    Ok(client.txn(txn).await?.succeeded)
}

/// Deletes the owner record of `client_id` if it still names `owner` (the session
/// ended here; a newer owner elsewhere is left alone).
pub async fn delete_owner(
    client: &PlacementClient,
    client_id: &str,
    owner: &broker_pb::SessionOwner,
) -> placement_client::Result<()> {
    use pb::request_op::Request;
    let key = key(client_id);
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            key: key.clone(),
            result: pb::compare::Result::Equal as i32,
            target: Some(pb::compare::Target::Value(owner.encode_to_vec())),
        }],
        success: vec![pb::RequestOp {
            request: Some(Request::Delete(pb::DeleteRequest {
                key,
                prev_kv: false,
            })),
        }],
        failure: Vec::new(),
    };
    client.txn(txn).await.map(drop)
}

/// A session's state, for another broker.
pub fn export(session: &Session, now: Instant) -> broker_pb::SessionState {
    let st = session.lock();
    broker_pb::SessionState {
        subscriptions: st
            .subscriptions
            .iter()
            .map(|(key, sub)| export_subscription(key, sub))
            .collect(),
        queue: st.queue.iter().map(|d| export_delivery(d, now)).collect(),
        inflight: st
            .inflight
            .iter()
            .map(|(&id, entry)| broker_pb::InflightEntry {
                packet_id: u32::from(id),
                publish: match entry {
                    Inflight::Publish(d) => Some(export_delivery(d, now)),
                    Inflight::Released => None,
                },
            })
            .collect(),
        incoming_qos2: st.incoming_qos2.iter().map(|&id| u32::from(id)).collect(),
        expiry_interval: st.expiry_interval,
        // A live owner's connection publishes (or discards) its own will.
        will: None,
    }
}

pub fn export_subscription(key: &ByteString, sub: &Subscription) -> broker_pb::SessionSubscription {
    broker_pb::SessionSubscription {
        key: key.to_string(),
        share_group: sub.share_group.as_ref().map(|g| g.to_string()),
        filter: sub.filter.to_string(),
        qos: sub.options.qos as u32,
        no_local: sub.options.no_local,
        retain_as_published: sub.options.retain_as_published,
        retain_handling: sub.options.retain_handling as u32,
        id: sub.id,
    }
}

fn export_delivery(d: &Delivery, now: Instant) -> broker_pb::QueuedDelivery {
    broker_pb::QueuedDelivery {
        message: Some(convert::to_proto(&d.message, &[], convert::Clock::at(now))),
        qos: d.qos as u32,
        retain: d.retain,
        subscription_ids: d.subscription_ids.clone(),
    }
}

/// Decodes a transferred session into the state a local [`Session`] keeps (no
/// connection yet); anything malformed refuses the whole session.
pub fn import(state: broker_pb::SessionState, now: Instant) -> Result<SessionState, DecodeError> {
    let mut out = SessionState::default();
    out.expiry_interval = state.expiry_interval;
    for s in state.subscriptions {
        let options = SubscriptionOptions {
            qos: qos(s.qos)?,
            no_local: s.no_local,
            retain_as_published: s.retain_as_published,
            retain_handling: match s.retain_handling {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNew,
                _ => RetainHandling::DoNotSend,
            },
        };
        let sub = Subscription {
            share_group: s.share_group.map(ByteString::from),
            filter: s.filter.into(),
            options,
            id: s.id,
        };
        out.subscriptions.insert(s.key.into(), sub);
    }
    for d in state.queue {
        out.queue.push_back(import_delivery(d, now)?);
    }
    for entry in state.inflight {
        let id = packet_id(entry.packet_id)?;
        let value = match entry.publish {
            Some(d) => Inflight::Publish(import_delivery(d, now)?),
            None => Inflight::Released,
        };
        out.inflight.insert(id, value);
    }
    for id in state.incoming_qos2 {
        out.incoming_qos2.insert(packet_id(id)?);
    }
    Ok(out)
}

fn import_delivery(d: broker_pb::QueuedDelivery, now: Instant) -> Result<Delivery, DecodeError> {
    let message = d.message.ok_or(DecodeError::Missing("message"))?;
    let (message, _) = convert::from_proto(message, convert::Clock::at(now))?;
    Ok(Delivery {
        message: Arc::new(message),
        qos: qos(d.qos)?,
        retain: d.retain,
        subscription_ids: d.subscription_ids,
        span: None,
        durable: None,
        replay: false,
    })
}

fn qos(v: u32) -> Result<QoS, DecodeError> {
    u8::try_from(v)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or(DecodeError::BadQos(v))
}

fn packet_id(v: u32) -> Result<u16, DecodeError> {
    u16::try_from(v)
        .ok()
        .filter(|&id| id != 0)
        .ok_or(DecodeError::BadPacketId(v))
}

/// Moves an imported session's queue, in-flight and QoS 2 state into `state` (the
/// subscriptions are installed by the caller, who also updates routes).
pub fn install_queues(state: &mut SessionState, imported: &mut SessionState) {
    state.queue.extend(imported.queue.drain(..));
    state.inflight.append(&mut imported.inflight);
    state.incoming_qos2.extend(imported.incoming_qos2.drain());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn delivery(payload: &'static [u8], qos: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: "t/1".into(),
                payload: bytes::Bytes::from_static(payload),
                qos,
                retain: false,
                properties: Default::default(),
                publisher: "p".into(),
                received_at: Instant::now(),
                remote: false,
                trace: None,
            }),
            qos,
            retain: true,
            span: None,
            durable: None,
            replay: false,
            subscription_ids: vec![7],
        }
    }

    #[test]
    fn a_session_survives_export_and_import() {
        let session = Session::new("c".into());
        {
            let mut st = session.lock();
            st.subscriptions.insert(
                "$share/g/t/+".into(),
                Subscription {
                    share_group: Some("g".into()),
                    filter: "t/+".into(),
                    options: SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: false,
                        retain_as_published: true,
                        retain_handling: RetainHandling::SendIfNew,
                    },
                    id: Some(7),
                },
            );
            st.queue.push_back(delivery(b"queued", QoS::AtLeastOnce));
            st.inflight
                .insert(3, Inflight::Publish(delivery(b"sent", QoS::ExactlyOnce)));
            st.inflight.insert(4, Inflight::Released);
            st.incoming_qos2.insert(9);
            st.expiry_interval = 300;
        }
        let now = Instant::now();
        let state = export(&session, now);
        assert_eq!(state.expiry_interval, 300);
        let mut imported = import(state, now).unwrap();
        let sub = &imported.subscriptions[&ByteString::from("$share/g/t/+")];
        assert_eq!(sub.share_group.as_deref(), Some("g"));
        assert_eq!(sub.options.retain_handling, RetainHandling::SendIfNew);
        assert!(sub.options.retain_as_published);
        assert_eq!(sub.id, Some(7));
        let mut st = SessionState::default();
        install_queues(&mut st, &mut imported);
        assert_eq!(&st.queue[0].message.payload[..], b"queued");
        assert_eq!(st.queue[0].subscription_ids, vec![7]);
        assert!(
            matches!(&st.inflight[&3], Inflight::Publish(d) if d.qos == QoS::ExactlyOnce && d.retain)
        );
        assert!(matches!(st.inflight[&4], Inflight::Released));
        assert!(st.incoming_qos2.contains(&9));
    }

    #[test]
    fn malformed_state_is_refused() {
        let bad_id = broker_pb::SessionState {
            incoming_qos2: vec![0],
            ..Default::default()
        };
        assert!(import(bad_id, Instant::now()).is_err());
        let bad_qos = broker_pb::SessionState {
            queue: vec![broker_pb::QueuedDelivery {
                message: Some(convert::to_proto(
                    &delivery(b"x", QoS::AtMostOnce).message,
                    &[],
                    convert::Clock::now(),
                )),
                qos: 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(import(bad_qos, Instant::now()).is_err());
    }
}
