//! Random valid packets for each protocol version, from a tiny deterministic xorshift
//! PRNG (no new dependencies).

use bytes::Bytes;
use mqtt_codec::*;

/// xorshift64*: deterministic, good enough to spread test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn bytes(&mut self, max: usize) -> Bytes {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| self.next() as u8)
            .collect::<Vec<_>>()
            .into()
    }

    /// A string mixing ASCII, multi-byte characters, '/', '$' and U+FEFF; never U+0000,
    /// never a wildcard.
    pub fn string(&mut self, max: usize) -> ByteString {
        const PARTS: [&str; 9] = ["a", "Z", "9", "/", "$", " ", "é", "€", "\u{FEFF}"];
        let len = self.below(max + 1);
        (0..len)
            .map(|_| self.pick(&PARTS))
            .collect::<String>()
            .into()
    }

    pub fn topic(&mut self) -> ByteString {
        let mut s = self.string(12).to_string();
        s.push('t');
        s.into()
    }

    pub fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.bool() {
            Some(f(self))
        } else {
            None
        }
    }

    pub fn user_properties(&mut self) -> UserProperties {
        let n = self.below(4);
        (0..n).map(|_| (self.string(6), self.string(6))).collect()
    }

    pub fn packet_id(&mut self) -> u16 {
        1 + self.below(65_535) as u16
    }

    pub fn qos(&mut self) -> QoS {
        self.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
    }

    /// A reason code valid for `kind` in MQTT 5.
    pub fn reason(&mut self, kind: PacketKind) -> ReasonCode {
        let valid: Vec<ReasonCode> = (0..=255u8)
            .map(ReasonCode)
            .filter(|r| r.is_valid_for(kind))
            .collect();
        self.pick(&valid)
    }

    fn reason_properties(&mut self, v5: bool) -> ReasonProperties {
        if !v5 {
            return ReasonProperties::default();
        }
        ReasonProperties {
            reason_string: self.opt(|r| r.string(10)),
            user_properties: self.user_properties(),
        }
    }

    /// A random valid packet of a random type for `version`.
    pub fn packet(&mut self, version: ProtocolVersion) -> Packet {
        let v5 = version.is_v5();
        let kinds = if v5 { 15 } else { 14 };
        match self.below(kinds) {
            0 => Packet::Connect(Box::new(self.connect(version))),
            1 => Packet::ConnAck(self.connack(version)),
            2 => Packet::Publish(self.publish(version)),
            n @ 3..=6 => {
                let kind = [
                    PacketKind::PubAck,
                    PacketKind::PubRec,
                    PacketKind::PubRel,
                    PacketKind::PubComp,
                ][n - 3];
                let p = PubResponse {
                    packet_id: self.packet_id(),
                    reason_code: if v5 && self.bool() {
                        self.reason(kind)
                    } else {
                        ReasonCode::SUCCESS
                    },
                    properties: self.reason_properties(v5),
                };
                match kind {
                    PacketKind::PubAck => Packet::PubAck(p),
                    PacketKind::PubRec => Packet::PubRec(p),
                    PacketKind::PubRel => Packet::PubRel(p),
                    _ => Packet::PubComp(p),
                }
            }
            7 => Packet::Subscribe(self.subscribe(version)),
            8 => {
                let n = 1 + self.below(4);
                let reason_codes = (0..n)
                    .map(|_| {
                        if v5 {
                            self.reason(PacketKind::SubAck)
                        } else {
                            ReasonCode(self.pick(&[0, 1, 2, 0x80]))
                        }
                    })
                    .collect();
                Packet::SubAck(SubAck {
                    packet_id: self.packet_id(),
                    reason_codes,
                    properties: self.reason_properties(v5),
                })
            }
            9 => {
                let n = 1 + self.below(4);
                Packet::Unsubscribe(Unsubscribe {
                    packet_id: self.packet_id(),
                    filters: (0..n).map(|_| self.topic()).collect(),
                    user_properties: if v5 {
                        self.user_properties()
                    } else {
                        Vec::new()
                    },
                })
            }
            10 => {
                let n = if v5 { 1 + self.below(4) } else { 0 };
                Packet::UnsubAck(UnsubAck {
                    packet_id: self.packet_id(),
                    reason_codes: (0..n).map(|_| self.reason(PacketKind::UnsubAck)).collect(),
                    properties: self.reason_properties(v5),
                })
            }
            11 => Packet::PingReq,
            12 => Packet::PingResp,
            13 if !v5 => Packet::Disconnect(Disconnect::default()),
            13 => Packet::Disconnect(Disconnect {
                reason_code: if self.bool() {
                    self.reason(PacketKind::Disconnect)
                } else {
                    ReasonCode::SUCCESS
                },
                properties: DisconnectProperties {
                    session_expiry_interval: self.opt(|r| r.next() as u32),
                    reason_string: self.opt(|r| r.string(10)),
                    user_properties: self.user_properties(),
                    server_reference: self.opt(|r| r.string(10)),
                },
            }),
            _ => Packet::Auth(Auth {
                reason_code: self.reason(PacketKind::Auth),
                properties: AuthProperties {
                    authentication_method: self.opt(|r| r.string(10)),
                    authentication_data: self.opt(|r| r.bytes(10)),
                    reason_string: self.opt(|r| r.string(10)),
                    user_properties: self.user_properties(),
                },
            }),
        }
    }

    pub fn connect(&mut self, version: ProtocolVersion) -> Connect {
        let v5 = version.is_v5();
        let username = self.opt(|r| r.string(10));
        let password = if username.is_some() || v5 {
            self.opt(|r| r.bytes(10))
        } else {
            None
        };
        let authentication_method = self.opt(|r| r.string(10));
        let properties = if v5 {
            ConnectProperties {
                session_expiry_interval: self.opt(|r| r.next() as u32),
                receive_maximum: self.opt(|r| r.packet_id()),
                maximum_packet_size: self.opt(|r| 1 + r.below(1 << 30) as u32),
                topic_alias_maximum: self.opt(|r| r.next() as u16),
                request_response_information: self.opt(Rng::bool),
                request_problem_information: self.opt(Rng::bool),
                user_properties: self.user_properties(),
                authentication_data: authentication_method
                    .as_ref()
                    .and_then(|_| self.opt(|r| r.bytes(10))),
                authentication_method,
            }
        } else {
            ConnectProperties::default()
        };
        let will = self.opt(|r| LastWill {
            topic: r.topic(),
            payload: r.bytes(20),
            qos: r.qos(),
            retain: r.bool(),
            properties: if v5 {
                WillProperties {
                    will_delay_interval: r.opt(|r| r.next() as u32),
                    payload_format_indicator: r.opt(|r| r.below(2) as u8),
                    message_expiry_interval: r.opt(|r| r.next() as u32),
                    content_type: r.opt(|r| r.string(10)),
                    response_topic: r.opt(Rng::topic),
                    correlation_data: r.opt(|r| r.bytes(10)),
                    user_properties: r.user_properties(),
                }
            } else {
                WillProperties::default()
            },
        });
        Connect {
            protocol: version,
            clean_start: self.bool(),
            keep_alive: self.next() as u16,
            client_id: self.string(23),
            will,
            username,
            password,
            properties,
        }
    }

    pub fn connack(&mut self, version: ProtocolVersion) -> ConnAck {
        let v5 = version.is_v5();
        let reason_code = if v5 {
            self.reason(PacketKind::ConnAck)
        } else {
            ReasonCode::from_v3_connack(self.below(6) as u8).unwrap()
        };
        let session_present =
            reason_code == ReasonCode::SUCCESS && version != ProtocolVersion::V3_1 && self.bool();
        let properties = if v5 {
            ConnAckProperties {
                session_expiry_interval: self.opt(|r| r.next() as u32),
                receive_maximum: self.opt(|r| r.packet_id()),
                maximum_qos: self.opt(|r| r.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce])),
                retain_available: self.opt(Rng::bool),
                maximum_packet_size: self.opt(|r| 1 + r.below(1 << 30) as u32),
                assigned_client_identifier: self.opt(|r| r.string(23)),
                topic_alias_maximum: self.opt(|r| r.next() as u16),
                reason_string: self.opt(|r| r.string(10)),
                user_properties: self.user_properties(),
                wildcard_subscription_available: self.opt(Rng::bool),
                subscription_identifiers_available: self.opt(Rng::bool),
                shared_subscription_available: self.opt(Rng::bool),
                server_keep_alive: self.opt(|r| r.next() as u16),
                response_information: self.opt(|r| r.string(10)),
                server_reference: self.opt(|r| r.string(10)),
                authentication_method: self.opt(|r| r.string(10)),
                authentication_data: self.opt(|r| r.bytes(10)),
            }
        } else {
            ConnAckProperties::default()
        };
        ConnAck {
            session_present,
            reason_code,
            properties,
        }
    }

    pub fn publish(&mut self, version: ProtocolVersion) -> Publish {
        let v5 = version.is_v5();
        let qos = self.qos();
        let properties = if v5 {
            PublishProperties {
                payload_format_indicator: self.opt(|r| r.below(2) as u8),
                message_expiry_interval: self.opt(|r| r.next() as u32),
                topic_alias: self.opt(|r| r.packet_id()),
                response_topic: self.opt(Rng::topic),
                correlation_data: self.opt(|r| r.bytes(10)),
                user_properties: self.user_properties(),
                subscription_identifiers: (0..self.below(3))
                    .map(|_| 1 + self.below(268_435_455) as u32)
                    .collect(),
                content_type: self.opt(|r| r.string(10)),
            }
        } else {
            PublishProperties::default()
        };
        let topic = if properties.topic_alias.is_some() && self.bool() {
            ByteString::new()
        } else {
            self.topic()
        };
        // Mostly small payloads, sometimes large enough for 2- and 3-byte lengths.
        let max_payload = self.pick(&[0, 16, 200, 20_000]);
        Publish {
            dup: qos != QoS::AtMostOnce && self.bool(),
            qos,
            retain: self.bool(),
            topic,
            packet_id: (qos != QoS::AtMostOnce).then(|| self.packet_id()),
            payload: self.bytes(max_payload),
            properties,
        }
    }

    pub fn subscribe(&mut self, version: ProtocolVersion) -> Subscribe {
        let v5 = version.is_v5();
        let n = 1 + self.below(4);
        let filters = (0..n)
            .map(|_| {
                let filter = self
                    .pick(&["a/+/c", "#", "a/b", "$share/g/x/#", "/", "+"])
                    .into();
                let options = SubscriptionOptions {
                    qos: self.qos(),
                    no_local: v5 && filter != "$share/g/x/#" && self.bool(),
                    retain_as_published: v5 && self.bool(),
                    retain_handling: if v5 {
                        self.pick(&[
                            RetainHandling::SendAtSubscribe,
                            RetainHandling::SendIfNew,
                            RetainHandling::DoNotSend,
                        ])
                    } else {
                        RetainHandling::SendAtSubscribe
                    },
                };
                SubscribeFilter { filter, options }
            })
            .collect();
        let properties = if v5 {
            SubscribeProperties {
                subscription_identifier: self.opt(|r| 1 + r.below(268_435_455) as u32),
                user_properties: self.user_properties(),
            }
        } else {
            SubscribeProperties::default()
        };
        Subscribe {
            packet_id: self.packet_id(),
            filters,
            properties,
        }
    }
}
