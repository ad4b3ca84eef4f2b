//! Reason codes: one type for MQTT 5 reason codes and MQTT 3.x return codes.
//!
//! The broker speaks MQTT 5 reason codes internally. The codec maps them to the
//! 3.1/3.1.1 CONNACK return codes and SUBACK granted-QoS/failure bytes on encode, and
//! back on decode, so version differences stay inside the codec.

use std::fmt;

use crate::PacketKind;

/// An MQTT 5 reason code (MQTT 5.0 §2.4). Several codes share a value (0x00 is
/// Success, Normal disconnection and Granted QoS 0); the packet type disambiguates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

impl ReasonCode {
    pub const SUCCESS: Self = Self(0x00);
    pub const NORMAL_DISCONNECTION: Self = Self(0x00);
    pub const GRANTED_QOS_0: Self = Self(0x00);
    pub const GRANTED_QOS_1: Self = Self(0x01);
    pub const GRANTED_QOS_2: Self = Self(0x02);
    pub const DISCONNECT_WITH_WILL_MESSAGE: Self = Self(0x04);
    pub const NO_MATCHING_SUBSCRIBERS: Self = Self(0x10);
    pub const NO_SUBSCRIPTION_EXISTED: Self = Self(0x11);
    pub const CONTINUE_AUTHENTICATION: Self = Self(0x18);
    pub const RE_AUTHENTICATE: Self = Self(0x19);
    pub const UNSPECIFIED_ERROR: Self = Self(0x80);
    pub const MALFORMED_PACKET: Self = Self(0x81);
    pub const PROTOCOL_ERROR: Self = Self(0x82);
    pub const IMPLEMENTATION_SPECIFIC_ERROR: Self = Self(0x83);
    pub const UNSUPPORTED_PROTOCOL_VERSION: Self = Self(0x84);
    pub const CLIENT_IDENTIFIER_NOT_VALID: Self = Self(0x85);
    pub const BAD_USER_NAME_OR_PASSWORD: Self = Self(0x86);
    pub const NOT_AUTHORIZED: Self = Self(0x87);
    pub const SERVER_UNAVAILABLE: Self = Self(0x88);
    pub const SERVER_BUSY: Self = Self(0x89);
    pub const BANNED: Self = Self(0x8A);
    pub const SERVER_SHUTTING_DOWN: Self = Self(0x8B);
    pub const BAD_AUTHENTICATION_METHOD: Self = Self(0x8C);
    pub const KEEP_ALIVE_TIMEOUT: Self = Self(0x8D);
    pub const SESSION_TAKEN_OVER: Self = Self(0x8E);
    pub const TOPIC_FILTER_INVALID: Self = Self(0x8F);
    pub const TOPIC_NAME_INVALID: Self = Self(0x90);
    pub const PACKET_IDENTIFIER_IN_USE: Self = Self(0x91);
    pub const PACKET_IDENTIFIER_NOT_FOUND: Self = Self(0x92);
    pub const RECEIVE_MAXIMUM_EXCEEDED: Self = Self(0x93);
    pub const TOPIC_ALIAS_INVALID: Self = Self(0x94);
    pub const PACKET_TOO_LARGE: Self = Self(0x95);
    pub const MESSAGE_RATE_TOO_HIGH: Self = Self(0x96);
    pub const QUOTA_EXCEEDED: Self = Self(0x97);
    pub const ADMINISTRATIVE_ACTION: Self = Self(0x98);
    pub const PAYLOAD_FORMAT_INVALID: Self = Self(0x99);
    pub const RETAIN_NOT_SUPPORTED: Self = Self(0x9A);
    pub const QOS_NOT_SUPPORTED: Self = Self(0x9B);
    pub const USE_ANOTHER_SERVER: Self = Self(0x9C);
    pub const SERVER_MOVED: Self = Self(0x9D);
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: Self = Self(0x9E);
    pub const CONNECTION_RATE_EXCEEDED: Self = Self(0x9F);
    pub const MAXIMUM_CONNECT_TIME: Self = Self(0xA0);
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: Self = Self(0xA1);
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: Self = Self(0xA2);

    /// True for codes below 0x80 (success and informational codes).
    pub fn is_success(self) -> bool {
        self.0 < 0x80
    }

    /// The MQTT 3.1/3.1.1 CONNACK return code closest to this reason code (§3.2.2.3).
    pub fn to_v3_connack(self) -> u8 {
        match self {
            Self::SUCCESS => 0x00,
            Self::UNSUPPORTED_PROTOCOL_VERSION => 0x01,
            Self::CLIENT_IDENTIFIER_NOT_VALID => 0x02,
            Self::SERVER_UNAVAILABLE | Self::SERVER_BUSY | Self::SERVER_SHUTTING_DOWN => 0x03,
            Self::BAD_USER_NAME_OR_PASSWORD | Self::BAD_AUTHENTICATION_METHOD => 0x04,
            _ => 0x05,
        }
    }

    /// The MQTT 5 reason code for an MQTT 3.1/3.1.1 CONNACK return code.
    pub fn from_v3_connack(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::SUCCESS,
            0x01 => Self::UNSUPPORTED_PROTOCOL_VERSION,
            0x02 => Self::CLIENT_IDENTIFIER_NOT_VALID,
            0x03 => Self::SERVER_UNAVAILABLE,
            0x04 => Self::BAD_USER_NAME_OR_PASSWORD,
            0x05 => Self::NOT_AUTHORIZED,
            _ => return None,
        })
    }

    /// A short, stable name, used in logs and as a metric label value.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "success",
            0x01 => "granted_qos_1",
            0x02 => "granted_qos_2",
            0x04 => "disconnect_with_will_message",
            0x10 => "no_matching_subscribers",
            0x11 => "no_subscription_existed",
            0x18 => "continue_authentication",
            0x19 => "re_authenticate",
            0x80 => "unspecified_error",
            0x81 => "malformed_packet",
            0x82 => "protocol_error",
            0x83 => "implementation_specific_error",
            0x84 => "unsupported_protocol_version",
            0x85 => "client_identifier_not_valid",
            0x86 => "bad_user_name_or_password",
            0x87 => "not_authorized",
            0x88 => "server_unavailable",
            0x89 => "server_busy",
            0x8A => "banned",
            0x8B => "server_shutting_down",
            0x8C => "bad_authentication_method",
            0x8D => "keep_alive_timeout",
            0x8E => "session_taken_over",
            0x8F => "topic_filter_invalid",
            0x90 => "topic_name_invalid",
            0x91 => "packet_identifier_in_use",
            0x92 => "packet_identifier_not_found",
            0x93 => "receive_maximum_exceeded",
            0x94 => "topic_alias_invalid",
            0x95 => "packet_too_large",
            0x96 => "message_rate_too_high",
            0x97 => "quota_exceeded",
            0x98 => "administrative_action",
            0x99 => "payload_format_invalid",
            0x9A => "retain_not_supported",
            0x9B => "qos_not_supported",
            0x9C => "use_another_server",
            0x9D => "server_moved",
            0x9E => "shared_subscriptions_not_supported",
            0x9F => "connection_rate_exceeded",
            0xA0 => "maximum_connect_time",
            0xA1 => "subscription_identifiers_not_supported",
            0xA2 => "wildcard_subscriptions_not_supported",
            _ => "unknown",
        }
    }
}

impl ReasonCode {
    /// True if MQTT 5 allows this code in a packet of `kind` (MQTT 5 Table 2-6). The
    /// DISCONNECT set is the union of what clients and servers may send; packets without a
    /// reason code allow none.
    pub fn is_valid_for(self, kind: PacketKind) -> bool {
        // Straight from the "MQTT Control Packets" column of Table 2-6.
        let allowed: &[u8] = match kind {
            PacketKind::ConnAck => &[
                0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
                0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
            ],
            PacketKind::PubAck | PacketKind::PubRec => {
                &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
            }
            PacketKind::PubRel | PacketKind::PubComp => &[0x00, 0x92],
            PacketKind::SubAck => &[
                0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
            ],
            PacketKind::UnsubAck => &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
            PacketKind::Disconnect => &[
                0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90,
                0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0,
                0xA1, 0xA2,
            ],
            PacketKind::Auth => &[0x00, 0x18, 0x19],
            _ => &[],
        };
        allowed.contains(&self.0)
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(0x{:02X})", self.name(), self.0)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_connack_codes_round_trip() {
        for code in 0..=5u8 {
            let reason = ReasonCode::from_v3_connack(code).unwrap();
            assert_eq!(reason.to_v3_connack(), code);
            assert!(reason.is_valid_for(PacketKind::ConnAck), "{reason}");
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
    }

    #[test]
    fn validity_per_packet() {
        assert!(ReasonCode::SUCCESS.is_valid_for(PacketKind::PubRel));
        assert!(ReasonCode::PACKET_IDENTIFIER_NOT_FOUND.is_valid_for(PacketKind::PubComp));
        assert!(!ReasonCode::NO_MATCHING_SUBSCRIBERS.is_valid_for(PacketKind::PubRel));
        assert!(ReasonCode::GRANTED_QOS_2.is_valid_for(PacketKind::SubAck));
        assert!(!ReasonCode::GRANTED_QOS_2.is_valid_for(PacketKind::PubAck));
        assert!(ReasonCode::RE_AUTHENTICATE.is_valid_for(PacketKind::Auth));
        assert!(!ReasonCode::UNSPECIFIED_ERROR.is_valid_for(PacketKind::Auth));
        assert!(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE.is_valid_for(PacketKind::Disconnect));
        assert!(!ReasonCode::SUCCESS.is_valid_for(PacketKind::PingReq));
        // Every code valid somewhere has a name.
        for code in 0..=255u8 {
            let reason = ReasonCode(code);
            if PacketKind::ALL.iter().any(|&k| reason.is_valid_for(k)) {
                assert_ne!(reason.name(), "unknown", "{code:#x}");
            }
        }
    }
}
