//! Framing: the cheap look at the fixed header ([`check`]), decoding one whole packet
//! ([`decode`]) and encoding one ([`encode`], [`encoded_len`]), in mini-redis's
//! check-then-parse style.

use bytes::{Buf, BufMut, BytesMut};

use crate::packets;
use crate::read::parse_varint;
use crate::write::{put_varint, varint_len, MAX_VARINT};
use crate::{DecodeError, EncodeError, Packet, PacketKind, ProtocolVersion, PublishRef};

/// The largest packet MQTT can frame: one type byte, four length bytes, 268,435,455
/// bytes of body. Use it as `max_packet_size` for "no limit of our own".
pub const MAX_PACKET_SIZE: usize = 1 + 4 + MAX_VARINT;

/// The total packet size the fixed header at the front of `buf` announces and the fixed
/// header's own size, or `Ok(None)` if the fixed header is not complete yet.
pub(crate) fn frame_len(
    buf: &[u8],
    max_packet_size: usize,
) -> Result<Option<(usize, usize)>, DecodeError> {
    let Some(len_bytes) = buf.get(1..) else {
        return Ok(None);
    };
    let Some((remaining, n)) = parse_varint(len_bytes)? else {
        return Ok(None);
    };
    let size = 1 + n + remaining as usize;
    if size > max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    Ok(Some((size, 1 + n)))
}

/// Cheap look at the fixed header: `Ok(None)` while more bytes are needed (incomplete
/// header or body), `Ok(Some(total_len))` once `buf` holds one whole packet of
/// `total_len` bytes (fixed header plus remaining length).
///
/// Fails as soon as the fixed header is complete if the announced total size exceeds
/// `max_packet_size` (so an oversized body is never buffered), and with
/// `MalformedPacket` for a remaining length longer than four bytes or not minimally
/// encoded.
pub fn check(buf: &[u8], max_packet_size: usize) -> Result<Option<usize>, DecodeError> {
    let frame = frame_len(buf, max_packet_size)?;
    Ok(frame
        .map(|(size, _)| size)
        .filter(|&size| buf.len() >= size))
}

/// Decodes one packet from the front of `buf`, advancing past it, if a whole one is
/// there; `Ok(None)` (with `buf` untouched) otherwise.
///
/// `version` is `None` before CONNECT: then only CONNECT is accepted and anything else
/// is a Protocol Error [MQTT-3.1.0-1]. Afterwards pass the connection's version.
/// Decoding is zero-copy: the frame is split off `buf` and frozen, and strings and
/// payloads are slices of it. On error the connection must be closed: an error in the
/// fixed header (too large, bad remaining length) leaves `buf` untouched, an error in
/// the body leaves `buf` past the bad packet.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some((size, header_len)) = frame_len(buf, max_packet_size)? else {
        return Ok(None);
    };
    if buf.len() < size {
        return Ok(None);
    }
    let header = buf[0];
    buf.advance(header_len);
    let body = buf.split_to(size - header_len).freeze();
    packets::read(header, body, version).map(Some)
}

/// Appends the encoding of `packet` for `version` to `buf`. CONNECT is always encoded
/// in its own `protocol`. Nothing is appended on error.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let version = packets::wire_version(packet, version);
    let body = packets::body_len(packet, version);
    put_frame(buf, packets::header_byte(packet), body, |buf| {
        packets::write_body(packet, version, buf)
    })
}

/// Appends one PUBLISH, given by reference, to `buf`: [`encode`] for the hot path of a
/// broker, which writes the same message to many subscribers.
pub fn encode_publish(
    publish: PublishRef<'_>,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let body = packets::publish::len(&publish, version);
    let header = (PacketKind::Publish as u8) << 4 | packets::publish::flags(&publish);
    put_frame(buf, header, body, |buf| {
        packets::publish::write(&publish, version, buf)
    })
}

/// Writes the fixed header and, through `write`, a body of `body` bytes; on failure
/// `buf` is left as it was.
fn put_frame(
    buf: &mut BytesMut,
    header: u8,
    body: usize,
    write: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    if body > MAX_VARINT {
        return Err(EncodeError::PacketTooLarge(body));
    }
    let start = buf.len();
    buf.reserve(1 + varint_len(body) + body);
    buf.put_u8(header);
    let written = put_varint(buf, body).and_then(|()| write(buf));
    if let Err(e) = written {
        buf.truncate(start);
        return Err(e);
    }
    debug_assert_eq!(buf.len() - start, 1 + varint_len(body) + body);
    Ok(())
}

/// [`encoded_len`] of a PUBLISH given by reference.
pub fn publish_encoded_len(publish: PublishRef<'_>, version: ProtocolVersion) -> usize {
    let body = packets::publish::len(&publish, version);
    1 + varint_len(body) + body
}

/// The total encoded size of `packet` for `version`, fixed header included, without
/// encoding it (for checking against the peer's Maximum Packet Size).
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let body = packets::body_len(packet, packets::wire_version(packet, version));
    1 + varint_len(body) + body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reads_the_fixed_header() {
        assert_eq!(check(&[], 100), Ok(None));
        assert_eq!(check(&[0xC0], 100), Ok(None));
        assert_eq!(check(&[0xC0, 0x00], 100), Ok(Some(2)));
        assert_eq!(check(&[0x30, 0x03, 0x00], 100), Ok(None));
        assert_eq!(
            check(&[0x30, 0x03, 0x00, 0x00, 0x00, 0xFF], 100),
            Ok(Some(5))
        );
        assert_eq!(check(&[0x30, 0x80], 100), Ok(None));
        // 200 bytes of body announced: too large for 100 before any body byte arrives.
        assert_eq!(
            check(&[0x30, 0xC8, 0x01], 100),
            Err(DecodeError::PacketTooLarge {
                size: 203,
                max: 100
            })
        );
        assert!(matches!(
            check(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], MAX_PACKET_SIZE),
            Err(DecodeError::MalformedPacket(_))
        ));
        assert!(matches!(
            check(&[0x30, 0x80, 0x00], 100),
            Err(DecodeError::MalformedPacket(_))
        ));
    }
}

#[cfg(test)]
mod publish_ref_tests {
    use bytes::Bytes;

    use super::*;
    use crate::{Publish, PublishProperties, QoS};

    fn publish(qos: QoS, properties: PublishProperties) -> Publish {
        Publish {
            dup: qos != QoS::AtMostOnce,
            qos,
            retain: true,
            topic: "a/b".into(),
            packet_id: (qos != QoS::AtMostOnce).then_some(7),
            payload: Bytes::from_static(&[0x55; 300]),
            properties,
        }
    }

    /// The borrowed entry point writes byte for byte what `encode` writes.
    #[test]
    fn encode_publish_matches_encode() {
        let props = PublishProperties {
            message_expiry_interval: Some(30),
            response_topic: Some("r".into()),
            user_properties: vec![("k".into(), "v".into())],
            subscription_identifiers: vec![1, 200],
            ..Default::default()
        };
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let p = publish(qos, props.clone());
                let (mut owned, mut borrowed) = (BytesMut::new(), BytesMut::new());
                encode(&Packet::Publish(p.clone()), version, &mut owned).unwrap();
                encode_publish(p.as_ref(), version, &mut borrowed).unwrap();
                assert_eq!(owned, borrowed, "{version:?} {qos:?}");
                assert_eq!(publish_encoded_len(p.as_ref(), version), borrowed.len());
                assert_eq!(encoded_len(&Packet::Publish(p), version), borrowed.len());
            }
        }
    }

    /// An invalid PUBLISH is refused and leaves what was already in the buffer alone.
    #[test]
    fn encode_publish_refuses_and_leaves_buffer() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        let mut p = publish(QoS::AtLeastOnce, PublishProperties::default());
        p.packet_id = None;
        assert!(encode_publish(p.as_ref(), ProtocolVersion::V5, &mut buf).is_err());
        assert_eq!(&buf[..], b"xy");
    }
}
