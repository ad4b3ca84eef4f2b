//! The codec's errors: what went wrong while decoding (and which reason code the
//! broker answers with), what cannot be encoded, and the `tokio_util` adapter's union.

use crate::ReasonCode;

/// Why a packet could not be decoded.
///
/// Every variant maps to the MQTT 5 reason code the spec prescribes
/// ([`DecodeError::reason_code`]); for 3.x connections the broker just closes the
/// network connection (or, for CONNECT, answers with the v3 CONNACK return code
/// [`ReasonCode::to_v3_connack`] gives). After any decode error the connection must be
/// closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DecodeError {
    /// The bytes cannot be parsed according to the spec (MQTT 5 §1.2 "Malformed Packet").
    #[error("malformed packet: {0}")]
    MalformedPacket(&'static str),
    /// The packet parses but carries data the protocol does not allow.
    #[error("protocol error: {0}")]
    ProtocolError(&'static str),
    /// The fixed header announces a packet larger than the receiver's maximum
    /// (decided from the fixed header alone, before the body arrives).
    #[error("packet of {size} bytes exceeds the maximum of {max} bytes")]
    PacketTooLarge {
        /// Total packet size announced by the fixed header.
        size: usize,
        /// The limit it exceeds.
        max: usize,
    },
    /// CONNECT names a known protocol ("MQTT"/"MQIsdp") with a level this codec does
    /// not speak (or that does not belong to that name).
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT's protocol name is neither "MQTT" nor "MQIsdp". The spec lets the server
    /// answer with CONNACK 0x84 (Unsupported Protocol Version) or just close
    /// (MQTT 5 [MQTT-3.1.2-1], 3.1.1 [MQTT-3.1.2-1]).
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// A UTF-8 Encoded String is not well-formed UTF-8 or contains U+0000
    /// ([MQTT-1.5.4-1], [MQTT-1.5.4-2]).
    #[error("invalid UTF-8 string")]
    InvalidUtf8,
    /// A PUBLISH or Will topic name is empty or contains a wildcard.
    #[error("invalid topic name: {0}")]
    TopicNameInvalid(&'static str),
    /// A Topic Alias property of 0 (MQTT 5 §3.3.2.3.4; reported as 0x94).
    #[error("topic alias 0")]
    TopicAliasInvalid,
}

impl DecodeError {
    /// The MQTT 5 reason code to put in the CONNACK or DISCONNECT that reports this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::MalformedPacket(_) | Self::InvalidUtf8 => ReasonCode::MALFORMED_PACKET,
            Self::ProtocolError(_) => ReasonCode::PROTOCOL_ERROR,
            Self::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            Self::UnsupportedProtocolVersion(_) | Self::InvalidProtocolName => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            Self::TopicNameInvalid(_) => ReasonCode::TOPIC_NAME_INVALID,
            Self::TopicAliasInvalid => ReasonCode::TOPIC_ALIAS_INVALID,
        }
    }

    /// A stable snake_case label for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MalformedPacket(_) => "malformed",
            Self::ProtocolError(_) => "protocol_error",
            Self::PacketTooLarge { .. } => "too_large",
            Self::UnsupportedProtocolVersion(_) => "unsupported_version",
            Self::InvalidProtocolName => "invalid_protocol_name",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::TopicNameInvalid(_) => "topic_name_invalid",
            Self::TopicAliasInvalid => "topic_alias_invalid",
        }
    }
}

/// Why a packet could not be encoded. Nothing is appended to the buffer on error.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum EncodeError {
    /// The remaining length (given) would exceed 268,435,455 bytes, the largest the
    /// fixed header can express.
    #[error("remaining length {0} exceeds the MQTT maximum of 268,435,455 bytes")]
    PacketTooLarge(usize),
    /// The packet cannot be expressed on the wire for this protocol version (AUTH for
    /// 3.x, QoS > 0 PUBLISH without packet id, a string over 65,535 bytes, ...).
    #[error("invalid packet: {0}")]
    InvalidPacket(&'static str),
}

/// The error of the [`MqttCodec`](crate::MqttCodec) adapter.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent something that is not a valid packet.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// We tried to send something that cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_follow_the_spec() {
        let cases = [
            (DecodeError::MalformedPacket("x"), 0x81, "malformed"),
            (DecodeError::ProtocolError("x"), 0x82, "protocol_error"),
            (
                DecodeError::PacketTooLarge { size: 2, max: 1 },
                0x95,
                "too_large",
            ),
            (
                DecodeError::UnsupportedProtocolVersion(6),
                0x84,
                "unsupported_version",
            ),
            (
                DecodeError::InvalidProtocolName,
                0x84,
                "invalid_protocol_name",
            ),
            (DecodeError::InvalidUtf8, 0x81, "invalid_utf8"),
            (
                DecodeError::TopicNameInvalid("x"),
                0x90,
                "topic_name_invalid",
            ),
        ];
        for (err, code, kind) in cases {
            assert_eq!(err.reason_code(), ReasonCode(code), "{err}");
            assert_eq!(err.kind(), kind);
        }
        // The v3 CONNACK for a protocol problem is 0x01 (unacceptable protocol version).
        assert_eq!(
            DecodeError::InvalidProtocolName
                .reason_code()
                .to_v3_connack(),
            0x01
        );
    }
}
