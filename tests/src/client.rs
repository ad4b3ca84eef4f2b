//! An MQTT 5 test client: rumqttc's event loop runs in a task and hands every incoming
//! packet to a channel; the methods wait (with a deadline) for the packet they expect.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{QUIET, WAIT};

/// A PUBLISH as a subscriber received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Option<PublishProperties>,
}

/// A connected MQTT 5 client.
pub struct Client {
    pub client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Result<Packet, String>>,
    /// Packets read while waiting for another kind, in order.
    pending: VecDeque<Packet>,
    /// Session Present of the CONNACK.
    pub session_present: bool,
    task: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// Connects `id` to `addr` with clean start and no session expiry.
    pub async fn connect(addr: SocketAddr, id: &str) -> Self {
        Self::connect_with(addr, id, |_| {}).await
    }

    /// Connects with options changed by `tweak`; panics unless the CONNACK is a success.
    pub async fn connect_with(
        addr: SocketAddr,
        id: &str,
        tweak: impl FnOnce(&mut MqttOptions),
    ) -> Self {
        match Self::try_connect_with(addr, id, tweak).await {
            Ok(client) => client,
            Err(e) => panic!("connecting {id} to {addr}: {e}"),
        }
    }

    /// Connects with options changed by `tweak`; `Err` with rumqttc's account when the
    /// connection fails or the CONNACK refuses it.
    pub async fn try_connect_with(
        addr: SocketAddr,
        id: &str,
        tweak: impl FnOnce(&mut MqttOptions),
    ) -> Result<Self, String> {
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        tweak(&mut options);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let (tx, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PingResp(_))) => {}
                    Ok(Event::Incoming(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Stop here: rumqttc would reconnect on the next poll.
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        let mut c = Self {
            client,
            incoming,
            pending: VecDeque::new(),
            session_present: false,
            task,
        };
        let connack = match tokio::time::timeout(WAIT, c.incoming.recv()).await {
            Err(_) => return Err(format!("no CONNACK for {id} at {addr}")),
            Ok(None) => return Err("connection task gone".into()),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(Packet::ConnAck(a)))) if a.code == ConnectReturnCode::Success => a,
            Ok(Some(Ok(Packet::ConnAck(a)))) => return Err(format!("refused: {:?}", a.code)),
            Ok(Some(Ok(other))) => return Err(format!("{other:?} before CONNACK")),
        };
        c.session_present = connack.session_present;
        Ok(c)
    }

    /// Waits for the first packet `pick` accepts; others stay queued in order.
    pub async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
        if let Some(i) = self.pending.iter().position(|p| pick(p).is_some()) {
            let p = self.pending.remove(i).expect("found above");
            return pick(&p).expect("accepted above");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => panic!(
                    "timed out waiting for {what}; other packets: {:?}",
                    self.pending
                ),
                Ok(None) => panic!("connection task gone while waiting for {what}"),
                Ok(Some(Err(e))) => panic!("connection ended while waiting for {what}: {e}"),
                Ok(Some(Ok(p))) => match pick(&p) {
                    Some(t) => return t,
                    None => self.pending.push_back(p),
                },
            }
        }
    }

    /// Subscribes to `filter` and waits for the SUBACK; returns its reason codes.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<String> {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("SUBSCRIBE queued");
        let codes = self
            .expect(&format!("SUBACK for {filter}"), |p| match p {
                Packet::SubAck(s) => Some(s.return_codes.clone()),
                _ => None,
            })
            .await;
        codes.iter().map(|c| format!("{c:?}")).collect()
    }

    /// Publishes; for QoS 1 waits for the PUBACK.
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
    ) {
        self.client
            .publish(topic, qos, retain, payload.into())
            .await
            .expect("PUBLISH queued");
        if qos == QoS::AtLeastOnce {
            self.expect(&format!("PUBACK on {topic}"), |p| {
                matches!(p, Packet::PubAck(_)).then_some(())
            })
            .await;
        }
        if qos == QoS::ExactlyOnce {
            self.expect(&format!("PUBCOMP on {topic}"), |p| {
                matches!(p, Packet::PubComp(_)).then_some(())
            })
            .await;
        }
    }

    /// Waits for the next PUBLISH.
    pub async fn received(&mut self) -> Received {
        self.expect("PUBLISH", |p| match p {
            Packet::Publish(p) => Some(received_of(p)),
            _ => None,
        })
        .await
    }

    /// Every PUBLISH that arrives until none has come for [`QUIET`].
    pub async fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        let mut others = VecDeque::new();
        for p in self.pending.drain(..) {
            match p {
                Packet::Publish(p) => out.push(received_of(&p)),
                other => others.push_back(other),
            }
        }
        self.pending = others;
        while let Ok(Some(next)) = tokio::time::timeout(QUIET, self.incoming.recv()).await {
            match next {
                Ok(Packet::Publish(p)) => out.push(received_of(&p)),
                Ok(other) => self.pending.push_back(other),
                Err(e) => panic!("connection ended while draining: {e}"),
            }
        }
        out
    }

    /// Waits until the connection ends; returns rumqttc's account of why (a DISCONNECT
    /// from the server shows up here, with its reason code).
    pub async fn closed(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => panic!("connection still open; packets: {:?}", self.pending),
                Ok(None) => panic!("connection task gone without an error"),
                Ok(Some(Err(e))) => return e,
                Ok(Some(Ok(p))) => self.pending.push_back(p),
            }
        }
    }

    /// Closes the socket without DISCONNECT (as if the client crashed).
    pub fn kill(self) {
        self.task.abort();
    }
}

fn received_of(p: &Publish) -> Received {
    Received {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload: p.payload.clone(),
        qos: p.qos,
        retain: p.retain,
        properties: p.properties.clone(),
    }
}
