//! Property identifiers (MQTT 5 Table 2-4) and which packet may carry which (the
//! table's "Used in" column). Every identifier defined so far is below 64, so a `u64`
//! bitmask can track which ones a block has already seen.

pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub(crate) const CONTENT_TYPE: u8 = 0x03;
pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
pub(crate) const CORRELATION_DATA: u8 = 0x09;
pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
pub(crate) const REASON_STRING: u8 = 0x1F;
pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
pub(crate) const MAXIMUM_QOS: u8 = 0x24;
pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
pub(crate) const USER_PROPERTY: u8 = 0x26;
pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// The packet (or Will) a property block belongs to; decides which identifiers may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK: reason string and user properties.
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

impl Context {
    /// True if `id` may appear in this packet (MQTT 5 Table 2-4).
    pub(crate) fn allows(self, pid: u8) -> bool {
        if pid == USER_PROPERTY {
            return true;
        }
        match self {
            Self::Connect => matches!(
                pid,
                SESSION_EXPIRY_INTERVAL
                    | RECEIVE_MAXIMUM
                    | MAXIMUM_PACKET_SIZE
                    | TOPIC_ALIAS_MAXIMUM
                    | REQUEST_RESPONSE_INFORMATION
                    | REQUEST_PROBLEM_INFORMATION
                    | AUTHENTICATION_METHOD
                    | AUTHENTICATION_DATA
            ),
            Self::Will => matches!(
                pid,
                WILL_DELAY_INTERVAL
                    | PAYLOAD_FORMAT_INDICATOR
                    | MESSAGE_EXPIRY_INTERVAL
                    | CONTENT_TYPE
                    | RESPONSE_TOPIC
                    | CORRELATION_DATA
            ),
            Self::ConnAck => matches!(
                pid,
                SESSION_EXPIRY_INTERVAL
                    | RECEIVE_MAXIMUM
                    | MAXIMUM_QOS
                    | RETAIN_AVAILABLE
                    | MAXIMUM_PACKET_SIZE
                    | ASSIGNED_CLIENT_IDENTIFIER
                    | TOPIC_ALIAS_MAXIMUM
                    | REASON_STRING
                    | WILDCARD_SUBSCRIPTION_AVAILABLE
                    | SUBSCRIPTION_IDENTIFIER_AVAILABLE
                    | SHARED_SUBSCRIPTION_AVAILABLE
                    | SERVER_KEEP_ALIVE
                    | RESPONSE_INFORMATION
                    | SERVER_REFERENCE
                    | AUTHENTICATION_METHOD
                    | AUTHENTICATION_DATA
            ),
            Self::Publish => matches!(
                pid,
                PAYLOAD_FORMAT_INDICATOR
                    | MESSAGE_EXPIRY_INTERVAL
                    | TOPIC_ALIAS
                    | RESPONSE_TOPIC
                    | CORRELATION_DATA
                    | SUBSCRIPTION_IDENTIFIER
                    | CONTENT_TYPE
            ),
            Self::Ack => pid == REASON_STRING,
            Self::Subscribe => pid == SUBSCRIPTION_IDENTIFIER,
            Self::Unsubscribe => false,
            Self::Disconnect => matches!(
                pid,
                SESSION_EXPIRY_INTERVAL | REASON_STRING | SERVER_REFERENCE
            ),
            Self::Auth => matches!(
                pid,
                AUTHENTICATION_METHOD | AUTHENTICATION_DATA | REASON_STRING
            ),
        }
    }

    /// True if `id` may appear more than once in this packet: User Property always
    /// (§3.1.2.11.8), Subscription Identifier only in PUBLISH, where the server lists one
    /// per matching subscription (§3.3.2.3.8).
    pub(crate) fn repeatable(self, pid: u8) -> bool {
        pid == USER_PROPERTY || (self == Self::Publish && pid == SUBSCRIPTION_IDENTIFIER)
    }
}

/// True for the identifiers MQTT 5 defines.
pub(crate) fn is_known(pid: u8) -> bool {
    matches!(
        pid,
        PAYLOAD_FORMAT_INDICATOR
            | MESSAGE_EXPIRY_INTERVAL
            | CONTENT_TYPE
            | RESPONSE_TOPIC
            | CORRELATION_DATA
            | SUBSCRIPTION_IDENTIFIER
            | SESSION_EXPIRY_INTERVAL
            | ASSIGNED_CLIENT_IDENTIFIER
            | SERVER_KEEP_ALIVE
            | AUTHENTICATION_METHOD
            | AUTHENTICATION_DATA
            | REQUEST_PROBLEM_INFORMATION
            | WILL_DELAY_INTERVAL
            | REQUEST_RESPONSE_INFORMATION
            | RESPONSE_INFORMATION
            | SERVER_REFERENCE
            | REASON_STRING
            | RECEIVE_MAXIMUM
            | TOPIC_ALIAS_MAXIMUM
            | TOPIC_ALIAS
            | MAXIMUM_QOS
            | RETAIN_AVAILABLE
            | USER_PROPERTY
            | MAXIMUM_PACKET_SIZE
            | WILDCARD_SUBSCRIPTION_AVAILABLE
            | SUBSCRIPTION_IDENTIFIER_AVAILABLE
            | SHARED_SUBSCRIPTION_AVAILABLE
    )
}
