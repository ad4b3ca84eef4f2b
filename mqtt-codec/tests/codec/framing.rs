//! Framing: partial input, back-to-back packets, early PacketTooLarge, zero-copy
//! decoding, and the `tokio_util` codec adapter.

use bytes::{Bytes, BytesMut};
use mqtt_codec::*;
use tokio_util::codec::{Decoder, Encoder};

use crate::samples::{samples, VERSIONS};
use crate::{decode_version, encode_checked, hex};

#[test]
fn every_prefix_is_incomplete_and_leaves_the_buffer_alone() {
    for version in VERSIONS {
        for packet in samples(version) {
            let bytes = encode_checked(&packet, version);
            for cut in 0..bytes.len() {
                let mut buf = BytesMut::from(&bytes[..cut]);
                assert_eq!(check(&buf, MAX_PACKET_SIZE), Ok(None));
                let decoded = decode(&mut buf, decode_version(&packet, version), MAX_PACKET_SIZE);
                assert_eq!(decoded, Ok(None), "{packet:?} cut at {cut}");
                assert_eq!(&buf[..], &bytes[..cut]);
            }
            assert_eq!(check(&bytes, MAX_PACKET_SIZE), Ok(Some(bytes.len())));
        }
    }
}

#[test]
fn back_to_back_packets_decode_one_at_a_time() {
    let version = ProtocolVersion::V5;
    let packets = samples(version);
    let mut buf = BytesMut::new();
    for packet in &packets {
        encode(packet, version, &mut buf).unwrap();
    }
    // Half of the next packet's header at the end must wait for more bytes.
    buf.extend_from_slice(&[0x30]);
    let mut connected = None;
    for expected in &packets {
        let packet = decode(&mut buf, connected, MAX_PACKET_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(&packet, expected);
        connected = Some(version);
    }
    assert_eq!(decode(&mut buf, connected, MAX_PACKET_SIZE), Ok(None));
    assert_eq!(&buf[..], &[0x30]);
}

#[test]
fn packet_too_large_is_detected_from_the_fixed_header() {
    // Announces 2,097,151 bytes of body; only the header has arrived.
    let mut buf = BytesMut::from(&hex("30 ff ff 7f")[..]);
    let err = decode(&mut buf, Some(ProtocolVersion::V5), 1024).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 1 + 3 + 2_097_151,
            max: 1024
        }
    );
    assert_eq!(err.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    assert_eq!(buf.len(), 4, "nothing consumed");
    // The limit is on the whole packet, fixed header included: 10 bytes fit in 10.
    let mut buf = BytesMut::from(&hex("30 08 0001 61 6869686968")[..]);
    assert!(decode(&mut buf, Some(ProtocolVersion::V3_1_1), 10)
        .unwrap()
        .is_some());
    let mut buf = BytesMut::from(&hex("30 08 0001 61 6869686968")[..]);
    assert!(decode(&mut buf, Some(ProtocolVersion::V3_1_1), 9).is_err());
}

#[test]
fn publish_decoding_is_zero_copy() {
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "sensors/1".into(),
        packet_id: Some(1),
        payload: Bytes::from(vec![7u8; 64]),
        properties: PublishProperties {
            response_topic: Some("reply".into()),
            ..Default::default()
        },
    });
    let mut buf = encode_checked(&publish, ProtocolVersion::V5);
    let base = buf.as_ptr() as usize;
    let end = base + buf.len();
    let Some(Packet::Publish(p)) =
        decode(&mut buf, Some(ProtocolVersion::V5), MAX_PACKET_SIZE).unwrap()
    else {
        panic!()
    };
    for ptr in [
        p.payload.as_ptr(),
        p.topic.as_bytes().as_ptr(),
        p.properties
            .response_topic
            .as_ref()
            .unwrap()
            .as_bytes()
            .as_ptr(),
    ] {
        assert!(
            (base..end).contains(&(ptr as usize)),
            "slice of the read buffer"
        );
    }
    assert_eq!(p.payload.as_ptr() as usize + p.payload.len(), end);
}

#[test]
fn codec_learns_the_version_from_connect() {
    let mut codec = MqttCodec::new(MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    for packet in samples(ProtocolVersion::V3_1) {
        encode(&packet, ProtocolVersion::V3_1, &mut buf).unwrap();
    }
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Packet::Connect(_))
    ));
    assert_eq!(codec.version, Some(ProtocolVersion::V3_1));
    let mut count = 1;
    while let Some(packet) = codec.decode(&mut buf).unwrap() {
        assert_ne!(packet.kind(), PacketKind::Connect);
        count += 1;
    }
    assert_eq!(count, 14);
    let mut out = BytesMut::new();
    codec.encode(&Packet::PingResp, &mut out).unwrap();
    assert_eq!(&out[..], b"\xD0\x00");
}

#[test]
fn codec_keeps_the_version_of_a_broken_connect() {
    // A v5 CONNECT whose reserved flag is set: decoding fails, but the broker can still
    // answer with a v5 CONNACK 0x81.
    let mut codec = MqttCodec::default();
    let mut buf = BytesMut::from(&hex("10 0d 0004 4d515454 05 03 003c 00 0000")[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(
        err,
        CodecError::Decode(DecodeError::MalformedPacket(_))
    ));
    assert_eq!(codec.version, Some(ProtocolVersion::V5));
    assert_eq!(
        connect_version(&hex("10 0d 0004 4d515454 05 03 003c 00 0000")),
        Some(ProtocolVersion::V5)
    );
}

#[test]
fn codec_rejects_packets_before_connect() {
    let mut codec = MqttCodec::default();
    let mut buf = BytesMut::from(&b"\xC0\x00"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::Decode(DecodeError::ProtocolError(_)))
    ));
    assert_eq!(codec.version, None);
    let err = codec
        .encode(&Packet::PingReq, &mut BytesMut::new())
        .unwrap_err();
    assert!(matches!(
        err,
        CodecError::Encode(EncodeError::InvalidPacket(_))
    ));
}

#[test]
fn codec_enforces_its_maximum_and_waits_for_bodies() {
    let mut codec = MqttCodec::new(16);
    codec.version = Some(ProtocolVersion::V5);
    let mut buf = BytesMut::from(&hex("30 0e 0001 61 00")[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(
        buf.capacity() >= 16,
        "room reserved for the rest of the packet"
    );
    buf.extend_from_slice(&[0x61; 10]);
    assert!(codec.decode(&mut buf).unwrap().is_some());
    let mut buf = BytesMut::from(&hex("30 0f")[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::Decode(DecodeError::PacketTooLarge {
            size: 17,
            max: 16
        }))
    ));
}

#[test]
fn client_side_codec_sets_the_version_when_sending_connect() {
    let mut codec = MqttCodec::default();
    let connect = samples(ProtocolVersion::V5).swap_remove(0);
    let mut out = BytesMut::new();
    codec.encode(connect, &mut out).unwrap();
    assert_eq!(codec.version, Some(ProtocolVersion::V5));
    let mut buf = BytesMut::from(&hex("20 03 00 00 00")[..]);
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Packet::ConnAck(_))
    ));
}

#[test]
fn encode_errors_leave_the_buffer_untouched() {
    let bad = [
        (ProtocolVersion::V3_1_1, Packet::Auth(Auth::default())),
        (
            ProtocolVersion::V5,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: "t".into(),
                packet_id: None,
                payload: Bytes::new(),
                properties: Default::default(),
            }),
        ),
        (
            ProtocolVersion::V3_1_1,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "".into(),
                packet_id: None,
                payload: Bytes::new(),
                properties: PublishProperties {
                    topic_alias: Some(1),
                    ..Default::default()
                },
            }),
        ),
        (
            ProtocolVersion::V5,
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters: Vec::new(),
                properties: Default::default(),
            }),
        ),
        (
            ProtocolVersion::V5,
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 0,
                filters: vec!["a".into()],
                user_properties: Vec::new(),
            }),
        ),
        (
            ProtocolVersion::V5,
            Packet::ConnAck(ConnAck {
                session_present: false,
                reason_code: ReasonCode::SUCCESS,
                properties: ConnAckProperties {
                    maximum_qos: Some(QoS::ExactlyOnce),
                    ..Default::default()
                },
            }),
        ),
        (
            ProtocolVersion::V5,
            Packet::PubAck(PubResponse {
                packet_id: 1,
                reason_code: ReasonCode::SUCCESS,
                properties: ReasonProperties {
                    reason_string: Some("x".repeat(70_000).into()),
                    user_properties: Vec::new(),
                },
            }),
        ),
    ];
    for (version, packet) in bad {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let err = encode(&packet, version, &mut buf).unwrap_err();
        assert!(matches!(err, EncodeError::InvalidPacket(_)), "{err}");
        assert_eq!(&buf[..], b"keep");
    }
    let huge = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t".into(),
        packet_id: None,
        payload: Bytes::from(vec![0; 268_435_455]),
        properties: Default::default(),
    });
    let err = encode(&huge, ProtocolVersion::V3_1_1, &mut BytesMut::new()).unwrap_err();
    assert_eq!(err, EncodeError::PacketTooLarge(268_435_455 + 3));
}

#[test]
fn connack_encoding_follows_the_session_present_rules() {
    let refused = Packet::ConnAck(ConnAck {
        session_present: true,
        reason_code: ReasonCode::NOT_AUTHORIZED,
        properties: Default::default(),
    });
    assert_eq!(
        &encode_checked(&refused, ProtocolVersion::V3_1_1)[..],
        &hex("20 02 00 05")[..]
    );
    assert_eq!(
        &encode_checked(&refused, ProtocolVersion::V5)[..],
        &hex("20 03 00 87 00")[..]
    );
    let accepted = Packet::ConnAck(ConnAck {
        session_present: true,
        reason_code: ReasonCode::SUCCESS,
        properties: Default::default(),
    });
    assert_eq!(
        &encode_checked(&accepted, ProtocolVersion::V3_1)[..],
        &hex("20 02 00 00")[..]
    );
    assert_eq!(
        &encode_checked(&accepted, ProtocolVersion::V3_1_1)[..],
        &hex("20 02 01 00")[..]
    );
}

#[test]
fn a_bad_body_is_consumed_and_the_next_packet_is_intact() {
    let v = Some(ProtocolVersion::V3_1_1);
    let mut buf = BytesMut::from(&hex("30 05 0003 612f23 c0 00")[..]);
    assert!(matches!(
        decode(&mut buf, v, MAX_PACKET_SIZE),
        Err(DecodeError::TopicNameInvalid(_))
    ));
    assert_eq!(
        decode(&mut buf, v, MAX_PACKET_SIZE),
        Ok(Some(Packet::PingReq))
    );
    assert!(buf.is_empty());
}
