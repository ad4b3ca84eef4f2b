//! Known byte vectors (what real clients put on the wire) decode to the expected
//! structs, and the encoder reproduces them byte for byte.

use bytes::Bytes;
use mqtt_codec::*;

use crate::{decode_one, encode_checked, hex};

fn s(v: &str) -> ByteString {
    v.into()
}

/// Decodes `bytes`, compares with `expected`, and checks that encoding gives the same bytes.
fn check_vector(bytes: &[u8], version: Option<ProtocolVersion>, expected: &Packet) {
    let decoded = decode_one(bytes, version).unwrap();
    assert_eq!(&decoded, expected);
    let encode_version = match expected {
        Packet::Connect(c) => c.protocol,
        _ => version.unwrap(),
    };
    assert_eq!(
        &encode_checked(expected, encode_version)[..],
        bytes,
        "{expected:?}"
    );
}

#[test]
fn mosquitto_pub_v311_connect() {
    // mosquitto_pub -V mqttv311 -i mosq-test -k 60: clean session, nothing else.
    let bytes = hex("10 15 0004 4d515454 04 02 003c 0009 6d6f73712d74657374");
    let expected = Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive: 60,
        client_id: s("mosq-test"),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    check_vector(&bytes, None, &Packet::Connect(Box::new(expected)));
}

#[test]
fn v311_connect_with_will_and_credentials() {
    // -i pub1 -u user -P pass --will-topic w --will-payload bye --will-qos 1 --will-retain
    let bytes = hex(
        "10 24 0004 4d515454 04 ee 003c 0004 70756231 0001 77 0003 627965 \
         0004 75736572 0004 70617373",
    );
    let expected = Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive: 60,
        client_id: s("pub1"),
        will: Some(LastWill {
            topic: s("w"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some(s("user")),
        password: Some(Bytes::from_static(b"pass")),
        properties: ConnectProperties::default(),
    };
    check_vector(&bytes, None, &Packet::Connect(Box::new(expected)));
}

#[test]
fn v31_connect() {
    // An MQTT 3.1 client: "MQIsdp", level 3.
    let bytes = hex("10 12 0006 4d5149736470 03 02 003c 0004 74657374");
    let decoded = decode_one(&bytes, None).unwrap();
    let Packet::Connect(c) = &decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(c.protocol, ProtocolVersion::V3_1);
    assert_eq!(c.client_id, "test");
    assert_eq!(
        &encode_checked(&decoded, ProtocolVersion::V3_1)[..],
        &bytes[..]
    );
}

#[test]
fn v31_connect_tolerates_flagged_but_missing_credentials() {
    // MQTT 3.1 clients may set the user name/password flags and leave the fields out.
    let bytes = hex("10 12 0006 4d5149736470 03 c2 003c 0004 74657374");
    let Packet::Connect(c) = decode_one(&bytes, None).unwrap() else {
        panic!()
    };
    assert_eq!((c.username, c.password), (None, None));
}

#[test]
fn v5_connect_with_properties() {
    // Session Expiry 3600, Receive Maximum 20, Topic Alias Maximum 10, one user property.
    let bytes = hex("10 22 0004 4d515454 05 02 003c \
         12 11 00000e10 21 0014 22 000a 26 0001 6b 0001 76 \
         0003 636964");
    let expected = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: s("cid"),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(20),
            topic_alias_maximum: Some(10),
            user_properties: vec![(s("k"), s("v"))],
            ..Default::default()
        },
    };
    check_vector(&bytes, None, &Packet::Connect(Box::new(expected)));
}

#[test]
fn v5_connect_with_password_but_no_user_name() {
    // Allowed since MQTT 5 (§3.1.2.9).
    let bytes = hex("10 13 0004 4d515454 05 40 0000 00 0001 63 0003 707764");
    let Packet::Connect(c) = decode_one(&bytes, None).unwrap() else {
        panic!()
    };
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_deref(), Some(&b"pwd"[..]));
}

#[test]
fn v5_connect_with_will_properties() {
    // Will flag + QoS 0; will properties: Will Delay 5, Payload Format 1.
    let bytes = hex("10 1f 0004 4d515454 05 06 000a 00 0001 63 \
         07 18 00000005 01 01 0003 612f62 0002 6869");
    let Packet::Connect(c) = decode_one(&bytes, None).unwrap() else {
        panic!()
    };
    let will = c.will.unwrap();
    assert_eq!(will.topic, "a/b");
    assert_eq!(will.payload, "hi");
    assert_eq!(will.properties.will_delay_interval, Some(5));
    assert_eq!(will.properties.payload_format_indicator, Some(1));
}

#[test]
fn publish_vectors() {
    let v311 = Some(ProtocolVersion::V3_1_1);
    let v5 = Some(ProtocolVersion::V5);
    // QoS 0, retain, "a/b" -> "hello".
    let bytes = hex("31 0a 0003 612f62 68656c6c6f");
    let expected = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: s("a/b"),
        packet_id: None,
        payload: Bytes::from_static(b"hello"),
        properties: PublishProperties::default(),
    };
    check_vector(&bytes, v311, &Packet::Publish(expected));

    // v5 QoS 1, packet id 10, Payload Format 1, Topic Alias 5, "hi".
    let bytes = hex("32 0f 0003 612f62 000a 05 01 01 23 0005 6869");
    let expected = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: s("a/b"),
        packet_id: Some(10),
        payload: Bytes::from_static(b"hi"),
        properties: PublishProperties {
            payload_format_indicator: Some(1),
            topic_alias: Some(5),
            ..Default::default()
        },
    };
    check_vector(&bytes, v5, &Packet::Publish(expected));

    // v5 empty topic with a topic alias (the broker resolves it).
    let bytes = hex("30 07 0000 03 23 0005 78");
    let Packet::Publish(p) = decode_one(&bytes, v5).unwrap() else {
        panic!()
    };
    assert_eq!((p.topic.as_ref(), p.properties.topic_alias), ("", Some(5)));
}

#[test]
fn acknowledgement_vectors() {
    let v311 = Some(ProtocolVersion::V3_1_1);
    let v5 = Some(ProtocolVersion::V5);
    check_vector(
        &hex("40 02 0001"),
        v311,
        &Packet::PubAck(PubResponse::new(1)),
    );
    check_vector(
        &hex("62 02 0001"),
        v311,
        &Packet::PubRel(PubResponse::new(1)),
    );
    // v5 short forms: length 2 = Success, length 3 = reason only.
    check_vector(&hex("40 02 0001"), v5, &Packet::PubAck(PubResponse::new(1)));
    check_vector(
        &hex("50 03 0001 10"),
        v5,
        &Packet::PubRec(PubResponse::with_reason(
            1,
            ReasonCode::NO_MATCHING_SUBSCRIBERS,
        )),
    );
    check_vector(
        &hex("70 03 0001 92"),
        v5,
        &Packet::PubComp(PubResponse::with_reason(
            1,
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        )),
    );
    // The long form of Success decodes to the same struct.
    assert_eq!(
        decode_one(&hex("40 04 0001 00 00"), v5).unwrap(),
        Packet::PubAck(PubResponse::new(1))
    );
    assert_eq!(
        decode_one(&hex("40 03 0001 00"), v5).unwrap(),
        Packet::PubAck(PubResponse::new(1))
    );
    // With a reason string.
    let bytes = hex("40 09 0001 87 05 1f 0002 6e6f");
    let expected = PubResponse {
        packet_id: 1,
        reason_code: ReasonCode::NOT_AUTHORIZED,
        properties: ReasonProperties {
            reason_string: Some(s("no")),
            user_properties: Vec::new(),
        },
    };
    check_vector(&bytes, v5, &Packet::PubAck(expected));
}

#[test]
fn connack_vectors() {
    let v311 = Some(ProtocolVersion::V3_1_1);
    let ack = |session_present, reason_code| {
        Packet::ConnAck(ConnAck {
            session_present,
            reason_code,
            properties: ConnAckProperties::default(),
        })
    };
    check_vector(&hex("20 02 01 00"), v311, &ack(true, ReasonCode::SUCCESS));
    check_vector(
        &hex("20 02 00 01"),
        v311,
        &ack(false, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
    );
    check_vector(
        &hex("20 02 00 05"),
        v311,
        &ack(false, ReasonCode::NOT_AUTHORIZED),
    );
    // v5 codes without a v3 equivalent map to 0x05 (not authorized) for 3.x.
    let banned = ack(false, ReasonCode::BANNED);
    assert_eq!(
        &encode_checked(&banned, ProtocolVersion::V3_1_1)[..],
        &hex("20 02 00 05")[..]
    );
    // v5 (mosquitto-like): Topic Alias Maximum 10, Receive Maximum 20.
    let expected = ConnAck {
        session_present: false,
        reason_code: ReasonCode::SUCCESS,
        properties: ConnAckProperties {
            topic_alias_maximum: Some(10),
            receive_maximum: Some(20),
            ..Default::default()
        },
    };
    let decoded = decode_one(
        &hex("20 09 00 00 06 22 000a 21 0014"),
        Some(ProtocolVersion::V5),
    );
    assert_eq!(decoded.unwrap(), Packet::ConnAck(expected));
}

#[test]
fn subscribe_vectors() {
    let v311 = Some(ProtocolVersion::V3_1_1);
    let v5 = Some(ProtocolVersion::V5);
    let bytes = hex("82 0a 0001 0005 612f622f63 01");
    let expected = Subscribe {
        packet_id: 1,
        filters: vec![SubscribeFilter {
            filter: s("a/b/c"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        }],
        properties: SubscribeProperties::default(),
    };
    check_vector(&bytes, v311, &Packet::Subscribe(expected));

    // v5: Subscription Identifier 200 (two-byte varint), options QoS 2 + NL + RAP + RH 1.
    let bytes = hex("82 0a 0002 03 0b c801 0001 23 1e");
    let expected = Subscribe {
        packet_id: 2,
        filters: vec![SubscribeFilter {
            filter: s("#"),
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::SendIfNew,
            },
        }],
        properties: SubscribeProperties {
            subscription_identifier: Some(200),
            user_properties: Vec::new(),
        },
    };
    check_vector(&bytes, v5, &Packet::Subscribe(expected));

    let suback = |codes: &[u8]| SubAck {
        packet_id: 1,
        reason_codes: codes.iter().map(|&c| ReasonCode(c)).collect(),
        properties: ReasonProperties::default(),
    };
    check_vector(
        &hex("90 04 0001 02 80"),
        v311,
        &Packet::SubAck(suback(&[2, 0x80])),
    );
    check_vector(
        &hex("90 05 0001 00 01 8f"),
        v5,
        &Packet::SubAck(suback(&[1, 0x8F])),
    );
    // 3.x has one failure code: every v5 failure becomes 0x80.
    let v5_failure = Packet::SubAck(suback(&[0x8F, 0x00, 0xA2]));
    assert_eq!(
        &encode_checked(&v5_failure, ProtocolVersion::V3_1_1)[..],
        &hex("90 05 0001 80 00 80")[..]
    );
}

#[test]
fn unsubscribe_vectors() {
    let v311 = Some(ProtocolVersion::V3_1_1);
    let v5 = Some(ProtocolVersion::V5);
    let expected = Unsubscribe {
        packet_id: 3,
        filters: vec![s("a/+")],
        user_properties: Vec::new(),
    };
    check_vector(
        &hex("a2 07 0003 0003 612f2b"),
        v311,
        &Packet::Unsubscribe(expected.clone()),
    );
    check_vector(
        &hex("a2 08 0003 00 0003 612f2b"),
        v5,
        &Packet::Unsubscribe(expected),
    );
    let unsuback = |codes: Vec<ReasonCode>| UnsubAck {
        packet_id: 3,
        reason_codes: codes,
        properties: ReasonProperties::default(),
    };
    check_vector(
        &hex("b0 02 0003"),
        v311,
        &Packet::UnsubAck(unsuback(Vec::new())),
    );
    check_vector(
        &hex("b0 04 0003 00 11"),
        v5,
        &Packet::UnsubAck(unsuback(vec![ReasonCode::NO_SUBSCRIPTION_EXISTED])),
    );
}

#[test]
fn ping_disconnect_auth_vectors() {
    let v311 = Some(ProtocolVersion::V3_1_1);
    let v5 = Some(ProtocolVersion::V5);
    check_vector(&hex("c0 00"), v311, &Packet::PingReq);
    check_vector(&hex("d0 00"), v5, &Packet::PingResp);
    check_vector(
        &hex("e0 00"),
        v311,
        &Packet::Disconnect(Disconnect::default()),
    );
    check_vector(
        &hex("e0 00"),
        v5,
        &Packet::Disconnect(Disconnect::default()),
    );
    let with_will = Disconnect {
        reason_code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        properties: DisconnectProperties::default(),
    };
    // Encoded with an empty property block (rumqttc cannot parse the one-byte form)…
    check_vector(
        &hex("e0 02 04 00"),
        v5,
        &Packet::Disconnect(with_will.clone()),
    );
    // …while the one-byte form still decodes.
    assert_eq!(
        decode_one(&hex("e0 01 04"), v5).unwrap(),
        Packet::Disconnect(with_will)
    );
    // Reason code plus an empty property block also decodes.
    assert_eq!(
        decode_one(&hex("e0 02 00 00"), v5).unwrap(),
        Packet::Disconnect(Disconnect::default())
    );
    // Session Expiry Interval on DISCONNECT.
    let bytes = hex("e0 07 00 05 11 0000003c");
    let Packet::Disconnect(d) = decode_one(&bytes, v5).unwrap() else {
        panic!()
    };
    assert_eq!(d.properties.session_expiry_interval, Some(60));

    check_vector(&hex("f0 00"), v5, &Packet::Auth(Auth::default()));
    let auth = Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: AuthProperties {
            authentication_method: Some(s("m")),
            authentication_data: Some(Bytes::from_static(b"d")),
            ..Default::default()
        },
    };
    check_vector(
        &hex("f0 0a 18 08 15 0001 6d 16 0001 64"),
        v5,
        &Packet::Auth(auth),
    );
}
