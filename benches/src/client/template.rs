//! A pre-encoded PUBLISH that is copied and patched per message (packet id, payload
//! header), so the publisher's hot loop does no encoding and no allocation.

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_codec::{Packet, ProtocolVersion, Publish, QoS};

use crate::payload::{write_header, Stamp, HEADER_LEN};

/// One encoded PUBLISH and where to patch it.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    bytes: Vec<u8>,
    /// Offset of the packet identifier (QoS 1/2 only).
    packet_id_at: Option<usize>,
    /// Offset of the payload.
    payload_at: usize,
}

impl PublishTemplate {
    /// Encodes a PUBLISH of `payload_size` zero bytes (at least [`HEADER_LEN`]).
    pub fn new(topic: &str, qos: QoS, payload_size: usize, version: ProtocolVersion) -> Self {
        let payload_size = payload_size.max(HEADER_LEN);
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id: (qos != QoS::AtMostOnce).then_some(1),
            payload: Bytes::from(vec![0u8; payload_size]),
            properties: Default::default(),
        };
        let mut buf = BytesMut::new();
        mqtt_codec::encode(&Packet::Publish(publish), version, &mut buf)
            .expect("a benchmark PUBLISH encodes");
        let payload_at = buf.len() - payload_size;
        // v5 has a one-byte (empty) property length between packet id and payload.
        let props = usize::from(version.is_v5());
        let packet_id_at = (qos != QoS::AtMostOnce).then(|| payload_at - props - 2);
        Self {
            bytes: buf.to_vec(),
            packet_id_at,
            payload_at,
        }
    }

    /// Encoded size of one message.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty template (never: a PUBLISH has a header).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends one message with this packet id and payload header to `out`.
    pub fn write(&self, out: &mut BytesMut, packet_id: u16, stamp: Stamp) {
        let start = out.len();
        out.put_slice(&self.bytes);
        let msg = &mut out[start..];
        if let Some(at) = self.packet_id_at {
            msg[at..at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        write_header(&mut msg[self.payload_at..], stamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::read_header;

    #[test]
    fn patched_template_decodes_as_the_intended_publish() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let t = PublishTemplate::new("bench/t/1", qos, 100, version);
                let mut buf = BytesMut::new();
                let stamp = Stamp {
                    publisher: 3,
                    seq: 99,
                    sent_at_ns: 12345,
                };
                t.write(&mut buf, 0xBEEF, stamp);
                t.write(&mut buf, 7, Stamp { seq: 100, ..stamp });
                let Some(Packet::Publish(p)) =
                    mqtt_codec::decode(&mut buf, Some(version), usize::MAX).unwrap()
                else {
                    panic!("not a publish")
                };
                assert_eq!(&*p.topic, "bench/t/1");
                assert_eq!(p.qos, qos);
                assert_eq!(p.payload.len(), 100);
                assert_eq!(read_header(&p.payload), Some(stamp));
                let expected_id = (qos != QoS::AtMostOnce).then_some(0xBEEF);
                assert_eq!(p.packet_id, expected_id, "{version:?} {qos:?}");
                let Some(Packet::Publish(second)) =
                    mqtt_codec::decode(&mut buf, Some(version), usize::MAX).unwrap()
                else {
                    panic!("not a publish")
                };
                assert_eq!(read_header(&second.payload).unwrap().seq, 100);
            }
        }
    }
}
