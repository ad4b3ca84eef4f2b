//! One fully populated sample of every packet type for each protocol version.

use bytes::Bytes;
use mqtt_codec::*;

/// Every version this codec speaks.
pub const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn s(v: &str) -> ByteString {
    v.into()
}

fn users() -> UserProperties {
    // Repeated names, an empty pair and non-ASCII: order must survive.
    vec![
        (s("k"), s("1")),
        (s("k"), s("2")),
        (s(""), s("")),
        (s("ключ"), s("значение")),
    ]
}

fn reason_props(v5: bool) -> ReasonProperties {
    if v5 {
        ReasonProperties {
            reason_string: Some(s("because")),
            user_properties: users(),
        }
    } else {
        ReasonProperties::default()
    }
}

/// One packet of every type valid in `version`, with every MQTT 5 property populated
/// when `version` is 5.0 (and only what 3.x can carry otherwise).
pub fn samples(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version.is_v5();
    let pick = |full: ReasonCode| if v5 { full } else { ReasonCode::SUCCESS };
    let connect = Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: s("client-1"),
        will: Some(LastWill {
            topic: s("status/client-1"),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: if v5 {
                WillProperties {
                    will_delay_interval: Some(30),
                    payload_format_indicator: Some(1),
                    message_expiry_interval: Some(3600),
                    content_type: Some(s("text/plain")),
                    response_topic: Some(s("reply/here")),
                    correlation_data: Some(Bytes::from_static(b"\x00\x01")),
                    user_properties: users(),
                }
            } else {
                WillProperties::default()
            },
        }),
        username: Some(s("user")),
        password: Some(Bytes::from_static(b"p\x00ss")),
        properties: if v5 {
            ConnectProperties {
                session_expiry_interval: Some(u32::MAX),
                receive_maximum: Some(100),
                maximum_packet_size: Some(1 << 20),
                topic_alias_maximum: Some(10),
                request_response_information: Some(true),
                request_problem_information: Some(false),
                user_properties: users(),
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"client-first")),
            }
        } else {
            ConnectProperties::default()
        },
    };
    let connack = ConnAck {
        session_present: version != ProtocolVersion::V3_1,
        reason_code: ReasonCode::SUCCESS,
        properties: if v5 {
            ConnAckProperties {
                session_expiry_interval: Some(7200),
                receive_maximum: Some(50),
                maximum_qos: Some(QoS::AtLeastOnce),
                retain_available: Some(false),
                maximum_packet_size: Some(65_536),
                assigned_client_identifier: Some(s("auto-7")),
                topic_alias_maximum: Some(16),
                reason_string: Some(s("welcome")),
                user_properties: users(),
                wildcard_subscription_available: Some(true),
                subscription_identifiers_available: Some(true),
                shared_subscription_available: Some(false),
                server_keep_alive: Some(30),
                response_information: Some(s("resp/")),
                server_reference: Some(s("other:1883")),
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"server-final")),
            }
        } else {
            ConnAckProperties::default()
        },
    };
    let publish = Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: s("sensors/temp/€"),
        packet_id: Some(0xBEEF),
        payload: Bytes::from_static(b"21.5"),
        properties: if v5 {
            PublishProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(60),
                topic_alias: Some(3),
                response_topic: Some(s("reply/temp")),
                correlation_data: Some(Bytes::from_static(b"corr")),
                user_properties: users(),
                subscription_identifiers: vec![1, 268_435_455, 300],
                content_type: Some(s("text/plain")),
            }
        } else {
            PublishProperties::default()
        },
    };
    let response = |kind| PubResponse {
        packet_id: 0xBEEF,
        reason_code: pick(match kind {
            PacketKind::PubRel | PacketKind::PubComp => ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            _ => ReasonCode::NO_MATCHING_SUBSCRIBERS,
        }),
        properties: reason_props(v5),
    };
    let full_options = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        no_local: v5,
        retain_as_published: v5,
        retain_handling: if v5 {
            RetainHandling::DoNotSend
        } else {
            RetainHandling::SendAtSubscribe
        },
    };
    let mut packets = vec![
        Packet::Connect(Box::new(connect)),
        Packet::ConnAck(connack),
        Packet::Publish(publish),
        Packet::PubAck(response(PacketKind::PubAck)),
        Packet::PubRec(response(PacketKind::PubRec)),
        Packet::PubRel(response(PacketKind::PubRel)),
        Packet::PubComp(response(PacketKind::PubComp)),
        Packet::Subscribe(Subscribe {
            packet_id: 7,
            filters: vec![
                SubscribeFilter {
                    filter: s("sport/+/score"),
                    options: full_options,
                },
                SubscribeFilter {
                    filter: s("#"),
                    options: SubscriptionOptions::default(),
                },
            ],
            properties: if v5 {
                SubscribeProperties {
                    subscription_identifier: Some(268_435_455),
                    user_properties: users(),
                }
            } else {
                SubscribeProperties::default()
            },
        }),
        Packet::SubAck(SubAck {
            packet_id: 7,
            reason_codes: vec![
                ReasonCode::GRANTED_QOS_2,
                if v5 {
                    ReasonCode::NOT_AUTHORIZED
                } else {
                    ReasonCode::UNSPECIFIED_ERROR
                },
            ],
            properties: reason_props(v5),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 8,
            filters: vec![s("sport/+/score"), s("#")],
            user_properties: if v5 { users() } else { Vec::new() },
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 8,
            reason_codes: if v5 {
                vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
            } else {
                Vec::new()
            },
            properties: reason_props(v5),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect {
            reason_code: pick(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE),
            properties: if v5 {
                DisconnectProperties {
                    session_expiry_interval: Some(0),
                    reason_string: Some(s("bye")),
                    user_properties: users(),
                    server_reference: Some(s("other:1883")),
                }
            } else {
                DisconnectProperties::default()
            },
        }),
    ];
    if v5 {
        packets.push(Packet::Auth(Auth {
            reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: AuthProperties {
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"client-final")),
                reason_string: Some(s("more")),
                user_properties: users(),
            },
        }));
    }
    packets
}
