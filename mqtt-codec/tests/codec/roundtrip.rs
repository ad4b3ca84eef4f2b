//! decode(encode(p)) == p and encoded_len == bytes written, for every packet type in
//! every version (fully populated samples) and for thousands of random packets.

use bytes::{Bytes, BytesMut};
use mqtt_codec::*;

use crate::gen::Rng;
use crate::samples::{samples, VERSIONS};
use crate::{decode_one, decode_version, encode_checked};

fn assert_round_trip(packet: &Packet, version: ProtocolVersion) {
    let bytes = encode_checked(packet, version);
    let decoded = decode_one(&bytes, decode_version(packet, version))
        .unwrap_or_else(|e| panic!("{e} decoding {packet:?} as {version:?}: {bytes:02x?}"));
    assert_eq!(&decoded, packet, "{version:?}");
}

#[test]
fn every_packet_type_round_trips_in_every_version() {
    for version in VERSIONS {
        let packets = samples(version);
        assert_eq!(packets.len(), if version.is_v5() { 15 } else { 14 });
        for packet in &packets {
            assert_round_trip(packet, version);
        }
    }
}

#[test]
fn random_packets_round_trip() {
    let mut rng = Rng::new(0x5EED);
    for version in VERSIONS {
        for _ in 0..3000 {
            let packet = rng.packet(version);
            assert_round_trip(&packet, version);
        }
    }
}

#[test]
fn minimal_packets_round_trip() {
    // Default-everything packets take the short forms.
    for version in VERSIONS {
        let mut packets = vec![
            Packet::PubAck(PubResponse::new(1)),
            Packet::PubRel(PubResponse::new(2)),
            Packet::Disconnect(Disconnect::default()),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "t".into(),
                packet_id: None,
                payload: Bytes::new(),
                properties: Default::default(),
            }),
        ];
        if version.is_v5() {
            packets.push(Packet::Auth(Auth::default()));
            packets.push(Packet::PubAck(PubResponse::with_reason(
                3,
                ReasonCode::QUOTA_EXCEEDED,
            )));
            packets.push(Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::SERVER_SHUTTING_DOWN,
                properties: Default::default(),
            }));
        }
        for packet in &packets {
            assert_round_trip(packet, version);
        }
    }
}

#[test]
fn v3_encoding_drops_what_v3_cannot_carry() {
    for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
        for packet in samples(ProtocolVersion::V5) {
            let packet = match packet {
                Packet::Auth(_) => continue,
                // CONNECT is always encoded in its own protocol version.
                Packet::Connect(mut c) => {
                    c.protocol = version;
                    Packet::Connect(c)
                }
                other => other,
            };
            let bytes = encode_checked(&packet, version);
            decode_one(&bytes, decode_version(&packet, version))
                .unwrap_or_else(|e| panic!("{e}: {packet:?}"));
        }
    }
}

#[test]
fn large_payloads_use_longer_remaining_lengths() {
    for (size, header) in [(100, 2), (200, 3), (20_000, 4), (2_100_000, 5)] {
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "big".into(),
            packet_id: Some(1),
            payload: Bytes::from(vec![0xA5; size]),
            properties: Default::default(),
        });
        let bytes = encode_checked(&packet, ProtocolVersion::V3_1_1);
        assert_eq!(bytes.len(), header + 5 + 2 + size);
        assert_eq!(
            decode_one(&bytes, Some(ProtocolVersion::V3_1_1)).unwrap(),
            packet
        );
    }
}

#[test]
fn encode_appends_and_reports_exact_sizes() {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    let packet = Packet::PingReq;
    encode(&packet, ProtocolVersion::V5, &mut buf).unwrap();
    assert_eq!(&buf[..], b"prefix\xC0\x00");
    assert_eq!(encoded_len(&packet, ProtocolVersion::V5), 2);
}
