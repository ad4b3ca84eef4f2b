//! A thin async MQTT client on mqtt-codec: one buffered connection, no background
//! task. The caller drives it with [`Connection::pump`], which makes progress on
//! whichever of reading, writing or a timer is ready, so one task can keep a window of
//! publishes in flight while reading their acknowledgements.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use mqtt_codec::{
    ConnAck, Connect, ConnectProperties, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode,
    Subscribe, SubscribeFilter, SubscriptionOptions, MAX_PACKET_SIZE,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ClientOptions;
use crate::payload::{read_header, Stamp};

/// Any byte stream the client can run over (TCP or TLS).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Read buffer size; grows for larger packets.
const READ_BUFFER: usize = 64 * 1024;

/// Errors of the native client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("decoding: {0}")]
    Decode(#[from] mqtt_codec::DecodeError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("connect refused: reason {0:?}")]
    Refused(ReasonCode),
    #[error("subscribe refused: reason {0:?}")]
    SubscribeRefused(ReasonCode),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("the broker closed the connection")]
    Closed,
    #[error("unexpected packet: {0}")]
    Unexpected(&'static str),
}

/// What one [`Connection::pump`] call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// Bytes arrived; decode them with [`Connection::next_packet`].
    Read,
    /// Some of the write buffer went out.
    Wrote,
    /// The deadline passed.
    Timer,
    /// The cancellation future resolved.
    Cancelled,
}

/// A packet from the broker, with PUBLISH read on a fast path.
#[derive(Debug)]
pub enum Incoming {
    /// A PUBLISH: only what the subscriber needs (QoS, packet id, our payload header).
    Publish {
        qos: QoS,
        packet_id: u16,
        stamp: Option<Stamp>,
    },
    /// Anything else, fully decoded (boxed: rare, and large).
    Other(Box<Packet>),
}

/// A connected client.
pub struct Connection {
    reader: ReadHalf<Box<dyn Stream>>,
    writer: WriteHalf<Box<dyn Stream>>,
    read_buf: BytesMut,
    /// Encoded packets waiting to go out.
    pub write_buf: BytesMut,
    pub version: ProtocolVersion,
}

impl Connection {
    /// Connects (TCP, TLS if configured, CONNECT/CONNACK) within the options' timeout.
    pub async fn connect(opts: &ClientOptions) -> Result<(Self, ConnAck), ClientError> {
        tokio::time::timeout(opts.connect_timeout, Self::connect_inner(opts))
            .await
            .map_err(|_| ClientError::Timeout("connect"))?
    }

    async fn connect_inner(opts: &ClientOptions) -> Result<(Self, ConnAck), ClientError> {
        let tcp = TcpStream::connect(opts.addr).await?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &opts.tls {
            Some(tls) => Box::new(
                tls.connector
                    .connect(tls.server_name.clone(), tcp)
                    .await
                    .map_err(|e| ClientError::Tls(e.to_string()))?,
            ),
            None => Box::new(tcp),
        };
        let (reader, writer) = tokio::io::split(stream);
        let mut conn = Self {
            reader,
            writer,
            read_buf: BytesMut::with_capacity(READ_BUFFER),
            write_buf: BytesMut::with_capacity(READ_BUFFER),
            version: opts.version,
        };
        let properties = ConnectProperties {
            session_expiry_interval: (opts.version.is_v5() && opts.session_expiry > 0)
                .then_some(opts.session_expiry),
            receive_maximum: opts.version.is_v5().then_some(u16::MAX),
            ..Default::default()
        };
        conn.send(&Packet::Connect(Box::new(Connect {
            protocol: opts.version,
            clean_start: opts.clean_start,
            keep_alive: opts.keep_alive,
            client_id: opts.client_id.as_str().into(),
            will: None,
            username: None,
            password: None,
            properties,
        })));
        conn.flush().await?;
        match conn.read_packet().await? {
            Packet::ConnAck(ack) if ack.reason_code.is_success() => Ok((conn, ack)),
            Packet::ConnAck(ack) => Err(ClientError::Refused(ack.reason_code)),
            _ => Err(ClientError::Unexpected("expected CONNACK")),
        }
    }

    /// Appends a packet to the write buffer.
    pub fn send(&mut self, packet: &Packet) {
        mqtt_codec::encode(packet, self.version, &mut self.write_buf)
            .expect("the client only builds encodable packets");
    }

    /// Writes the whole write buffer.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.writer.write_all(&self.write_buf).await?;
        self.writer.flush().await?;
        self.write_buf.clear();
        Ok(())
    }

    /// The next whole packet already read, if any.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, ClientError> {
        Ok(mqtt_codec::decode(
            &mut self.read_buf,
            Some(self.version),
            MAX_PACKET_SIZE,
        )?)
    }

    /// The next whole packet already read, if any. PUBLISH is parsed in place (fixed
    /// header, topic length, packet id, property length, then the payload's first bytes)
    /// without building a [`Packet`]: at a million deliveries per second the full decode
    /// and the moves of its ~250-byte struct were a third of the subscriber's CPU.
    /// Everything else goes through the codec.
    pub fn next_incoming(&mut self) -> Result<Option<Incoming>, ClientError> {
        let Some(len) = mqtt_codec::check(&self.read_buf, MAX_PACKET_SIZE)? else {
            return Ok(None);
        };
        let first = self.read_buf[0];
        if first >> 4 != 3 {
            return Ok(self.next_packet()?.map(|p| Incoming::Other(Box::new(p))));
        }
        let publish = parse_publish(&self.read_buf[..len], self.version.is_v5())
            .ok_or(ClientError::Unexpected("malformed PUBLISH"))?;
        self.read_buf.advance(len);
        Ok(Some(publish))
    }

    /// Reads until one packet is complete.
    pub async fn read_packet(&mut self) -> Result<Packet, ClientError> {
        loop {
            if let Some(p) = self.next_packet()? {
                return Ok(p);
            }
            if self.reader.read_buf(&mut self.read_buf).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// Makes progress on reading, writing (when there is something to write), the
    /// deadline or `cancel`, whichever comes first.
    pub async fn pump(
        &mut self,
        deadline: Option<Instant>,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Pumped, ClientError> {
        if self.read_buf.capacity() - self.read_buf.len() < 4096 {
            self.read_buf.reserve(READ_BUFFER);
        }
        let writing = !self.write_buf.is_empty();
        tokio::select! {
            biased;
            read = self.reader.read_buf(&mut self.read_buf) => match read? {
                0 => Err(ClientError::Closed),
                _ => Ok(Pumped::Read),
            },
            written = self.writer.write(&self.write_buf), if writing => {
                let n = written?;
                if n == 0 {
                    return Err(ClientError::Closed);
                }
                self.write_buf.advance(n);
                if self.write_buf.is_empty() {
                    self.write_buf.clear();
                }
                Ok(Pumped::Wrote)
            }
            _ = sleep_until(deadline) => Ok(Pumped::Timer),
            _ = cancel => Ok(Pumped::Cancelled),
        }
    }

    /// Subscribes to `filters` and waits for the SUBACK (other packets that arrive
    /// first are dropped: nothing is published before subscribers are ready).
    pub async fn subscribe(
        &mut self,
        filters: &[&str],
        qos: QoS,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: filters
                .iter()
                .map(|f| SubscribeFilter {
                    filter: (*f).into(),
                    options: SubscriptionOptions {
                        qos,
                        ..Default::default()
                    },
                })
                .collect(),
            properties: Default::default(),
        }));
        let wait = async {
            self.flush().await?;
            loop {
                if let Packet::SubAck(ack) = self.read_packet().await? {
                    return match ack.reason_codes.iter().find(|c| c.0 >= 0x80) {
                        Some(&code) => Err(ClientError::SubscribeRefused(code)),
                        None => Ok(()),
                    };
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout("subscribe"))?
    }

    /// Sends DISCONNECT and closes, best effort within a second.
    pub async fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Disconnect::default()));
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            self.flush().await?;
            self.writer.shutdown().await?;
            Ok::<_, ClientError>(())
        })
        .await;
    }
}

/// Reads a whole PUBLISH frame (fixed header included) as far as the subscriber needs.
fn parse_publish(frame: &[u8], v5: bool) -> Option<Incoming> {
    let qos = QoS::from_u8((frame[0] >> 1) & 0b11)?;
    let (_, len_bytes) = varint(frame.get(1..)?)?;
    let body = frame.get(1 + len_bytes..)?;
    let topic_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let mut at = 2 + topic_len;
    let mut packet_id = 0;
    if qos != QoS::AtMostOnce {
        packet_id = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
        at += 2;
    }
    if v5 {
        let (props_len, n) = varint(body.get(at..)?)?;
        at += n + props_len;
    }
    let payload = body.get(at..)?;
    Some(Incoming::Publish {
        qos,
        packet_id,
        stamp: read_header(payload),
    })
}

/// An MQTT Variable Byte Integer: (value, bytes used).
fn varint(buf: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, b) in buf.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::template::PublishTemplate;

    #[test]
    fn fast_publish_path_agrees_with_the_codec() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                // 200-byte payload: the remaining length takes two bytes.
                let t = PublishTemplate::new("a/b/c", qos, 200, version);
                let stamp = Stamp {
                    publisher: 9,
                    seq: 41,
                    sent_at_ns: 77,
                };
                let mut buf = BytesMut::new();
                t.write(&mut buf, 513, stamp);
                let Some(Incoming::Publish {
                    qos: q,
                    packet_id,
                    stamp: s,
                }) = parse_publish(&buf, version.is_v5())
                else {
                    panic!("not parsed")
                };
                assert_eq!((q, s), (qos, Some(stamp)));
                assert_eq!(packet_id, if qos == QoS::AtMostOnce { 0 } else { 513 });
                // Truncated frames are refused, not read out of bounds.
                assert!(parse_publish(&buf[..5], version.is_v5()).is_none());
            }
        }
        assert_eq!(varint(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(varint(&[0xFF, 0xFF, 0xFF, 0xFF]), None);
    }
}
