//! Transports: MQTT over TLS (rumqttc with a rustls config trusting a certificate made
//! here with rcgen), over WebSocket (subprotocol `mqtt`, path `/mqtt`) and over secure
//! WebSocket, with a tiny tokio-tungstenite client sending codec-encoded packets as
//! binary frames; a wrong path or an untrusted certificate is refused.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use mqtt_broker::config::{ListenerConfig, ListenerProtocol};
use mqtt_codec::{Packet, ProtocolVersion, PubResponse, QoS, ReasonCode};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q4;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::harness::*;

/// A self-signed certificate for 127.0.0.1, written as PEM files into `dir`.
fn certificate(dir: &Path) -> CertificateDer<'static> {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("rcgen makes a certificate");
    std::fs::write(dir.join("cert.pem"), key.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.signing_key.serialize_pem()).unwrap();
    key.cert.der().clone()
}

fn listener(protocol: ListenerProtocol, dir: &Path) -> ListenerConfig {
    let mut l = ListenerConfig::tcp("127.0.0.1:0".parse().unwrap());
    l.protocol = protocol;
    if matches!(protocol, ListenerProtocol::Tls | ListenerProtocol::Wss) {
        l.tls_cert = Some(dir.join("cert.pem"));
        l.tls_key = Some(dir.join("key.pem"));
    }
    l
}

/// A broker with TCP, TLS, WS and WSS listeners, and the certificate clients trust.
async fn broker_with_every_transport(dir: &Path) -> (TestBroker, CertificateDer<'static>) {
    let cert = certificate(dir);
    let listeners = [
        ListenerProtocol::Tcp,
        ListenerProtocol::Tls,
        ListenerProtocol::Ws,
        ListenerProtocol::Wss,
    ]
    .map(|p| listener(p, dir))
    .to_vec();
    let b = TestBroker::with(move |c| c.listeners = listeners).await;
    (b, cert)
}

/// A rustls client config (ring provider) trusting `cert` only.
fn client_tls(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

async fn tls_stream(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_tls(cert));
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.expect("TLS handshake")
}

#[tokio::test]
async fn mqtt_over_tls_with_rumqttc_v4_and_v5() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = broker_with_every_transport(dir.path()).await;
    let tls = b.addr(ListenerProtocol::Tls);
    let transport =
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(client_tls(&cert)));

    let mut o = V4::options(tls, "tls-v4");
    o.set_transport(transport.clone());
    let mut v4 = V4::connect_with(o).await.expect("TLS v4 connects");
    v4.subscribe("secure/#", Q4::AtLeastOnce).await;
    let mut o = V5::options(tls, "tls-v5");
    o.set_transport(transport);
    let mut v5 = V5::connect_with(o).await.expect("TLS v5 connects");
    v5.subscribe("secure/#", Q5::AtLeastOnce).await;

    // A plain TCP client publishes; both TLS subscribers receive.
    let plain = V4::connect(b.tcp(), "plain", |_| {}).await;
    plain
        .client
        .publish("secure/x", Q4::AtLeastOnce, false, "sealed")
        .await
        .unwrap();
    assert_eq!(&v4.publish().await.payload[..], b"sealed");
    assert_eq!(&v5.publish().await.payload[..], b"sealed");
    assert!(
        b.metric("robustmq_connections_opened_total", &[("listener", "tls")])
            .await
            >= 2.0
    );
}

/// A client that does not trust the certificate, or speaks plain MQTT to the TLS port,
/// does not get in; the failed handshake is counted.
#[tokio::test]
async fn tls_listener_refuses_bad_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _cert) = broker_with_every_transport(dir.path()).await;
    let tls = b.addr(ListenerProtocol::Tls);
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let tcp = TcpStream::connect(tls).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_tls(other.cert.der()));
    let name = ServerName::try_from("127.0.0.1").unwrap();
    assert!(
        connector.connect(name, tcp).await.is_err(),
        "untrusted certificate"
    );

    let before = b.metric(ERRORS, &[("reason", "transport_handshake")]).await;
    let mut plain = TcpStream::connect(tls).await.unwrap();
    let mut connect = BytesMut::new();
    let packet = Packet::Connect(Box::new(connect_packet(ProtocolVersion::V3_1_1, "plain")));
    mqtt_codec::encode(&packet, ProtocolVersion::V3_1_1, &mut connect).unwrap();
    plain.write_all(&connect).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    // At most a TLS alert record (content type 0x15), never a CONNACK (0x20).
    assert!(answer.first().is_none_or(|b| *b == 0x15), "{answer:?}");
    b.metric_reaches(ERRORS, &[("reason", "transport_handshake")], before + 1.0)
        .await;
    b.assert_healthy().await;
}

/// MQTT packets over WebSocket binary frames (MQTT 5 §6).
struct WsClient<S> {
    ws: WebSocketStream<S>,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    /// Upgrades `stream` on `path` offering the `mqtt` subprotocol.
    async fn open(stream: S, addr: SocketAddr, scheme: &str, path: &str) -> Result<Self, String> {
        let mut request = format!("{scheme}://{addr}{path}")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
        let (ws, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap()),
            Some("mqtt"),
            "the server picks the mqtt subprotocol"
        );
        Ok(Self {
            ws,
            buf: BytesMut::new(),
            version: ProtocolVersion::V5,
        })
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        mqtt_codec::encode(&packet, self.version, &mut out).unwrap();
        self.ws.send(Message::Binary(out.freeze())).await.unwrap();
    }

    async fn recv(&mut self) -> Packet {
        loop {
            if let Some(p) = mqtt_codec::decode(
                &mut self.buf,
                Some(self.version),
                mqtt_codec::MAX_PACKET_SIZE,
            )
            .unwrap()
            {
                return p;
            }
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("frame");
            match frame {
                Message::Binary(data) => self.buf.extend_from_slice(&data),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// CONNECT → CONNACK, SUBSCRIBE → SUBACK, PUBLISH QoS 1 to itself → PUBACK + PUBLISH.
    async fn round_trip(&mut self, id: &str) {
        self.send(Packet::Connect(Box::new(connect_packet(self.version, id))))
            .await;
        match self.recv().await {
            Packet::ConnAck(a) => assert_eq!(a.reason_code, ReasonCode::SUCCESS),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        self.send(subscribe_packet(
            1,
            "ws/#",
            qos_opts(QoS::AtLeastOnce),
            None,
        ))
        .await;
        assert!(matches!(self.recv().await, Packet::SubAck(_)));
        // Two packets in one frame: the broker must not care about frame boundaries.
        let mut out = BytesMut::new();
        for id in [10, 11] {
            mqtt_codec::encode(
                &publish_packet("ws/echo", QoS::AtLeastOnce, Some(id), b"framed"),
                self.version,
                &mut out,
            )
            .unwrap();
        }
        self.ws.send(Message::Binary(out.freeze())).await.unwrap();
        let (mut acks, mut publishes) = (0, 0);
        while acks + publishes < 4 {
            match self.recv().await {
                Packet::PubAck(_) => acks += 1,
                Packet::Publish(p) => {
                    assert_eq!(&p.payload[..], b"framed");
                    self.send(Packet::PubAck(PubResponse::new(p.packet_id.unwrap())))
                        .await;
                    publishes += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn mqtt_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _cert) = broker_with_every_transport(dir.path()).await;
    let ws = b.addr(ListenerProtocol::Ws);
    let mut c = WsClient::open(TcpStream::connect(ws).await.unwrap(), ws, "ws", "/mqtt")
        .await
        .expect("upgrade on /mqtt");
    c.round_trip("ws-client").await;

    // A TCP subscriber sees what the WebSocket client publishes.
    let mut tcp = V4::connect(b.tcp(), "tcp-sub", |_| {}).await;
    tcp.subscribe("ws/#", Q4::AtLeastOnce).await;
    c.send(publish_packet("ws/cross", QoS::AtMostOnce, None, b"hi"))
        .await;
    assert_eq!(tcp.publish().await.topic, "ws/cross");

    // Another path is refused at the HTTP upgrade.
    let refused = WsClient::open(TcpStream::connect(ws).await.unwrap(), ws, "ws", "/wrong").await;
    let err = refused.err().expect("no MQTT endpoint at /wrong");
    assert!(err.contains("404"), "{err}");
}

#[tokio::test]
async fn mqtt_over_secure_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = broker_with_every_transport(dir.path()).await;
    let wss = b.addr(ListenerProtocol::Wss);
    let mut c = WsClient::open(tls_stream(wss, &cert).await, wss, "wss", "/mqtt")
        .await
        .expect("upgrade on /mqtt over TLS");
    c.round_trip("wss-client").await;
    assert!(
        b.metric("robustmq_connections_opened_total", &[("listener", "wss")])
            .await
            >= 1.0
    );
}
