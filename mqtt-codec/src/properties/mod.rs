//! MQTT 5 properties (§2.2.2): identifiers, reading a property block with the spec's
//! checks, and writing one.
//!
//! Reading enforces, for every packet: an identifier unknown or not allowed in that
//! packet is a Malformed Packet (§2.2.2.2); a property given twice is a Protocol Error
//! (except User Property, and Subscription Identifier in PUBLISH); values the spec rules
//! out (0 for Receive Maximum, Maximum Packet Size, Topic Alias and Subscription
//! Identifier, a Byte flag other than 0/1, Maximum QoS 2) are Protocol Errors.
//!
//! Writing goes through [`PropertySet::visit`], which lists a packet's present
//! properties once; the same walk computes the size and writes the bytes.

use bytes::Bytes;
use bytestring::ByteString;

use crate::read::Reader;
use crate::{DecodeError, QoS};

pub(crate) mod id;
mod write;

pub(crate) use id::Context;
pub(crate) use write::{block_len, content_len, opt, user, write, PropertySet, Value};

/// One decoded property, its value already checked against the spec's value rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Property {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(ByteString),
    ResponseTopic(ByteString),
    CorrelationData(Bytes),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(ByteString),
    ServerKeepAlive(u16),
    AuthenticationMethod(ByteString),
    AuthenticationData(Bytes),
    RequestProblemInformation(bool),
    WillDelayInterval(u32),
    RequestResponseInformation(bool),
    ResponseInformation(ByteString),
    ServerReference(ByteString),
    ReasonString(ByteString),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQos(QoS),
    RetainAvailable(bool),
    /// A User Property (name, value).
    User(ByteString, ByteString),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(bool),
    SubscriptionIdentifierAvailable(bool),
    SharedSubscriptionAvailable(bool),
}

impl Property {
    /// The error for a property a packet's reader does not expect. [`read`] filters by
    /// [`Context`] first, so this only guards against a mismatch between the two lists.
    pub(crate) fn not_allowed(&self) -> DecodeError {
        DecodeError::MalformedPacket("property not allowed in this packet")
    }
}

/// Reads a property block (Property Length, then the properties), handing each property
/// to `f` in wire order.
pub(crate) fn read(
    r: &mut Reader,
    ctx: Context,
    mut f: impl FnMut(Property) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let len = r.varint()? as usize;
    let mut block = r.sub(len)?;
    let mut seen = 0u64;
    while !block.is_empty() {
        // Identifiers are Variable Byte Integers, but all defined ones are one byte; a
        // byte >= 0x80 would start an identifier this version does not define.
        let pid = block.u8()?;
        if !ctx.allows(pid) {
            return Err(DecodeError::MalformedPacket(if id::is_known(pid) {
                "property not allowed in this packet"
            } else {
                "unknown property identifier"
            }));
        }
        let bit = 1u64 << pid; // every allowed identifier is below 64
        if seen & bit != 0 && !ctx.repeatable(pid) {
            return Err(DecodeError::ProtocolError(
                "property included more than once",
            ));
        }
        seen |= bit;
        f(read_value(&mut block, pid)?)?;
    }
    Ok(())
}

/// A Byte property that the spec restricts to 0 or 1 ("It is a Protocol Error to have a
/// value other than 0 or 1"); Payload Format Indicator and Maximum QoS are treated alike.
fn flag(v: u8) -> Result<bool, DecodeError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::ProtocolError("property value must be 0 or 1")),
    }
}

/// Receive Maximum, Maximum Packet Size, Topic Alias and Subscription Identifier may not
/// be 0 (§3.1.2.11.3, §3.1.2.11.4, §3.3.2.3.4, §3.8.2.1.2).
fn non_zero<T: Default + PartialEq>(v: T, what: &'static str) -> Result<T, DecodeError> {
    if v == T::default() {
        Err(DecodeError::ProtocolError(what))
    } else {
        Ok(v)
    }
}

fn read_value(r: &mut Reader, pid: u8) -> Result<Property, DecodeError> {
    use id::*;
    use Property as P;
    Ok(match pid {
        PAYLOAD_FORMAT_INDICATOR => P::PayloadFormatIndicator(u8::from(flag(r.u8()?)?)),
        MESSAGE_EXPIRY_INTERVAL => P::MessageExpiryInterval(r.u32()?),
        CONTENT_TYPE => P::ContentType(r.string()?),
        RESPONSE_TOPIC => P::ResponseTopic(r.string()?),
        CORRELATION_DATA => P::CorrelationData(r.binary()?),
        SUBSCRIPTION_IDENTIFIER => {
            P::SubscriptionIdentifier(non_zero(r.varint()?, "subscription identifier 0")?)
        }
        SESSION_EXPIRY_INTERVAL => P::SessionExpiryInterval(r.u32()?),
        ASSIGNED_CLIENT_IDENTIFIER => P::AssignedClientIdentifier(r.string()?),
        SERVER_KEEP_ALIVE => P::ServerKeepAlive(r.u16()?),
        AUTHENTICATION_METHOD => P::AuthenticationMethod(r.string()?),
        AUTHENTICATION_DATA => P::AuthenticationData(r.binary()?),
        REQUEST_PROBLEM_INFORMATION => P::RequestProblemInformation(flag(r.u8()?)?),
        WILL_DELAY_INTERVAL => P::WillDelayInterval(r.u32()?),
        REQUEST_RESPONSE_INFORMATION => P::RequestResponseInformation(flag(r.u8()?)?),
        RESPONSE_INFORMATION => P::ResponseInformation(r.string()?),
        SERVER_REFERENCE => P::ServerReference(r.string()?),
        REASON_STRING => P::ReasonString(r.string()?),
        RECEIVE_MAXIMUM => P::ReceiveMaximum(non_zero(r.u16()?, "receive maximum 0")?),
        TOPIC_ALIAS_MAXIMUM => P::TopicAliasMaximum(r.u16()?),
        TOPIC_ALIAS => {
            P::TopicAlias(non_zero(r.u16()?, "").map_err(|_| DecodeError::TopicAliasInvalid)?)
        }
        MAXIMUM_QOS => P::MaximumQos(if flag(r.u8()?)? {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        }),
        RETAIN_AVAILABLE => P::RetainAvailable(flag(r.u8()?)?),
        USER_PROPERTY => P::User(r.string()?, r.string()?),
        MAXIMUM_PACKET_SIZE => P::MaximumPacketSize(non_zero(r.u32()?, "maximum packet size 0")?),
        WILDCARD_SUBSCRIPTION_AVAILABLE => P::WildcardSubscriptionAvailable(flag(r.u8()?)?),
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => P::SubscriptionIdentifierAvailable(flag(r.u8()?)?),
        SHARED_SUBSCRIPTION_AVAILABLE => P::SharedSubscriptionAvailable(flag(r.u8()?)?),
        _ => return Err(DecodeError::MalformedPacket("unknown property identifier")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &'static [u8], ctx: Context) -> Result<Vec<Property>, DecodeError> {
        let mut r = Reader::new(Bytes::from_static(bytes));
        let mut out = Vec::new();
        read(&mut r, ctx, |p| {
            out.push(p);
            Ok(())
        })?;
        r.expect_end()?;
        Ok(out)
    }

    #[test]
    fn every_identifier_has_a_type_and_a_home() {
        let all = [
            0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19,
            0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
        ];
        let contexts = [
            Context::Connect,
            Context::Will,
            Context::ConnAck,
            Context::Publish,
            Context::Ack,
            Context::Subscribe,
            Context::Unsubscribe,
            Context::Disconnect,
            Context::Auth,
        ];
        for pid in 0..=255u8 {
            let known = all.contains(&pid);
            assert_eq!(id::is_known(pid), known, "{pid:#x}");
            let homes = contexts.iter().filter(|c| c.allows(pid)).count();
            assert_eq!(homes > 0, known, "{pid:#x}");
        }
    }

    #[test]
    fn reads_properties_in_order() {
        let props = read_all(
            b"\x0F\x26\x00\x01a\x00\x01b\x23\x00\x05\x26\x00\x00\x00\x00",
            Context::Publish,
        )
        .unwrap();
        assert_eq!(
            props,
            [
                Property::User("a".into(), "b".into()),
                Property::TopicAlias(5),
                Property::User("".into(), "".into()),
            ]
        );
        assert_eq!(read_all(b"\x00", Context::Unsubscribe).unwrap(), []);
    }

    #[test]
    fn identifier_rules() {
        let malformed = |b| {
            matches!(
                read_all(b, Context::Publish),
                Err(DecodeError::MalformedPacket(_))
            )
        };
        let protocol = |b| {
            matches!(
                read_all(b, Context::Publish),
                Err(DecodeError::ProtocolError(_))
            )
        };
        assert!(malformed(b"\x02\x7F\x00"), "unknown identifier");
        assert!(
            malformed(b"\x05\x11\x00\x00\x00\x01"),
            "session expiry not allowed in PUBLISH"
        );
        assert!(malformed(b"\x02\x23\x00"), "value runs past the block");
        assert!(malformed(b"\x05\x23\x00\x01"), "block runs past the packet");
        assert!(
            protocol(b"\x06\x23\x00\x01\x23\x00\x02"),
            "duplicate topic alias"
        );
        assert_eq!(
            read_all(b"\x03\x23\x00\x00", Context::Publish).unwrap_err(),
            DecodeError::TopicAliasInvalid,
            "topic alias 0"
        );
        assert!(protocol(b"\x02\x0B\x00"), "subscription identifier 0");
        assert!(protocol(b"\x02\x01\x02"), "payload format indicator 2");
        // Subscription identifiers may repeat in PUBLISH but not in SUBSCRIBE.
        assert_eq!(
            read_all(b"\x04\x0B\x01\x0B\x02", Context::Publish)
                .unwrap()
                .len(),
            2
        );
        assert!(matches!(
            read_all(b"\x04\x0B\x01\x0B\x02", Context::Subscribe),
            Err(DecodeError::ProtocolError(_))
        ));
    }

    #[test]
    fn value_rules() {
        let protocol = |b, ctx| matches!(read_all(b, ctx), Err(DecodeError::ProtocolError(_)));
        assert!(
            protocol(b"\x03\x21\x00\x00", Context::Connect),
            "receive maximum 0"
        );
        assert!(
            protocol(b"\x05\x27\x00\x00\x00\x00", Context::Connect),
            "max packet size 0"
        );
        assert!(
            protocol(b"\x02\x17\x02", Context::Connect),
            "request problem info 2"
        );
        assert!(protocol(b"\x02\x24\x02", Context::ConnAck), "maximum QoS 2");
        assert_eq!(
            read_all(b"\x02\x24\x01", Context::ConnAck).unwrap(),
            [Property::MaximumQos(QoS::AtLeastOnce)]
        );
        assert!(matches!(
            read_all(b"\x04\x03\x00\x01\x00", Context::Publish),
            Err(DecodeError::InvalidUtf8)
        ));
    }
}
