//! [`MqttCodec`]: the `tokio_util::codec` adapter over [`decode`] and [`encode`], for
//! `Framed` transports. It remembers the connection's protocol version.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{frame_len, MAX_PACKET_SIZE};
use crate::{connect_version, decode, encode, CodecError, EncodeError, Packet, ProtocolVersion};

/// Decodes and encodes MQTT packets for one connection.
#[derive(Debug, Clone)]
pub struct MqttCodec {
    /// The connection's protocol version: `None` until CONNECT has been decoded (server)
    /// or encoded (client). Before that only CONNECT can be decoded. Set from a CONNECT's
    /// protocol name and level even when the rest of it fails to decode, so that the
    /// broker can answer a broken CONNECT with a CONNACK in the client's version.
    pub version: Option<ProtocolVersion>,
    /// The largest packet accepted, fixed header included; larger ones fail with
    /// `PacketTooLarge` as soon as their fixed header is read.
    pub max_packet_size: usize,
}

impl MqttCodec {
    /// A codec for a new connection (version unknown until CONNECT).
    pub fn new(max_packet_size: usize) -> Self {
        Self {
            version: None,
            max_packet_size,
        }
    }
}

impl Default for MqttCodec {
    /// No packet size limit beyond the protocol's own.
    fn default() -> Self {
        Self::new(MAX_PACKET_SIZE)
    }
}

impl Decoder for MqttCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        let Some((size, _)) = frame_len(src, self.max_packet_size)? else {
            return Ok(None);
        };
        if src.len() < size {
            // Make room for the rest of the packet in one go.
            src.reserve(size - src.len());
            return Ok(None);
        }
        if self.version.is_none() {
            self.version = connect_version(&src[..size]);
        }
        let packet = decode(src, self.version, self.max_packet_size)?;
        if let (None, Some(Packet::Connect(c))) = (self.version, &packet) {
            self.version = Some(c.protocol);
        }
        Ok(packet)
    }
}

impl Encoder<&Packet> for MqttCodec {
    type Error = CodecError;

    /// Encodes in the connection's version; encoding a CONNECT (client side) sets it.
    fn encode(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        let version = match (item, self.version) {
            (Packet::Connect(c), _) => *self.version.get_or_insert(c.protocol),
            (_, Some(version)) => version,
            (_, None) => {
                return Err(
                    EncodeError::InvalidPacket("protocol version unknown before CONNECT").into(),
                );
            }
        };
        encode(item, version, dst)?;
        Ok(())
    }
}

impl Encoder<Packet> for MqttCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        Encoder::<&Packet>::encode(self, &item, dst)
    }
}
