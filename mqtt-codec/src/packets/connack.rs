//! CONNACK (MQTT 5 §3.2, 3.1.1 §3.2). The model holds an MQTT 5 reason code; 3.x
//! return codes are mapped through [`ReasonCode::to_v3_connack`] and back.

use bytes::{BufMut, BytesMut};

use crate::properties::{self, id, opt, user, Context, Property, PropertySet, Value};
use crate::read::Reader;
use crate::{
    ConnAck, ConnAckProperties, DecodeError, EncodeError, PacketKind, ProtocolVersion, QoS,
    ReasonCode,
};

/// Connect Acknowledge Flags bit 0; bits 1–7 are reserved (§3.2.2.1).
const SESSION_PRESENT: u8 = 0x01;

/// Reads a CONNACK body.
///
/// MQTT 3.1 has no Session Present flag (the byte is unused), so it is ignored there and
/// decoded as `false`; from 3.1.1 on, bits 7–1 are reserved and must be 0.
pub(crate) fn read(r: &mut Reader, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    let session_present = match version {
        ProtocolVersion::V3_1 => false,
        _ if flags & !SESSION_PRESENT != 0 => {
            return Err(DecodeError::MalformedPacket("CONNACK reserved flags set"));
        }
        _ => flags & SESSION_PRESENT != 0,
    };
    let code = r.u8()?;
    let reason_code = if version.is_v5() {
        let reason = ReasonCode(code);
        if !reason.is_valid_for(PacketKind::ConnAck) {
            return Err(DecodeError::ProtocolError("invalid CONNACK reason code"));
        }
        reason
    } else {
        ReasonCode::from_v3_connack(code)
            .ok_or(DecodeError::ProtocolError("invalid CONNACK return code"))?
    };
    if session_present && reason_code != ReasonCode::SUCCESS {
        // [MQTT-3.2.2-6] (5.0), [MQTT-3.2.2-4] (3.1.1).
        return Err(DecodeError::ProtocolError(
            "session present on a refused connection",
        ));
    }
    let properties = if version.is_v5() {
        read_properties(r)?
    } else {
        ConnAckProperties::default()
    };
    Ok(ConnAck {
        session_present,
        reason_code,
        properties,
    })
}

fn read_properties(r: &mut Reader) -> Result<ConnAckProperties, DecodeError> {
    let mut p = ConnAckProperties::default();
    properties::read(r, Context::ConnAck, |prop| {
        match prop {
            Property::SessionExpiryInterval(v) => p.session_expiry_interval = Some(v),
            Property::ReceiveMaximum(v) => p.receive_maximum = Some(v),
            Property::MaximumQos(v) => p.maximum_qos = Some(v),
            Property::RetainAvailable(v) => p.retain_available = Some(v),
            Property::MaximumPacketSize(v) => p.maximum_packet_size = Some(v),
            Property::AssignedClientIdentifier(v) => p.assigned_client_identifier = Some(v),
            Property::TopicAliasMaximum(v) => p.topic_alias_maximum = Some(v),
            Property::ReasonString(v) => p.reason_string = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            Property::WildcardSubscriptionAvailable(v) => {
                p.wildcard_subscription_available = Some(v)
            }
            Property::SubscriptionIdentifierAvailable(v) => {
                p.subscription_identifiers_available = Some(v)
            }
            Property::SharedSubscriptionAvailable(v) => p.shared_subscription_available = Some(v),
            Property::ServerKeepAlive(v) => p.server_keep_alive = Some(v),
            Property::ResponseInformation(v) => p.response_information = Some(v),
            Property::ServerReference(v) => p.server_reference = Some(v),
            Property::AuthenticationMethod(v) => p.authentication_method = Some(v),
            Property::AuthenticationData(v) => p.authentication_data = Some(v),
            other => return Err(other.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

/// A boolean property as its 0/1 Byte.
fn flag(v: &bool) -> Value<'_> {
    Value::Byte(u8::from(*v))
}

impl PropertySet for ConnAckProperties {
    fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
    {
        opt(
            f,
            id::SESSION_EXPIRY_INTERVAL,
            &self.session_expiry_interval,
            |v| Value::U32(*v),
        )?;
        opt(f, id::RECEIVE_MAXIMUM, &self.receive_maximum, |v| {
            Value::U16(*v)
        })?;
        opt(f, id::MAXIMUM_QOS, &self.maximum_qos, |v| {
            Value::Byte(*v as u8)
        })?;
        opt(f, id::RETAIN_AVAILABLE, &self.retain_available, flag)?;
        opt(f, id::MAXIMUM_PACKET_SIZE, &self.maximum_packet_size, |v| {
            Value::U32(*v)
        })?;
        opt(
            f,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
            |v| Value::Str(v),
        )?;
        opt(f, id::TOPIC_ALIAS_MAXIMUM, &self.topic_alias_maximum, |v| {
            Value::U16(*v)
        })?;
        opt(f, id::REASON_STRING, &self.reason_string, |v| Value::Str(v))?;
        user(f, &self.user_properties)?;
        opt(
            f,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            &self.wildcard_subscription_available,
            flag,
        )?;
        opt(
            f,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            &self.subscription_identifiers_available,
            flag,
        )?;
        opt(
            f,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            &self.shared_subscription_available,
            flag,
        )?;
        opt(f, id::SERVER_KEEP_ALIVE, &self.server_keep_alive, |v| {
            Value::U16(*v)
        })?;
        opt(
            f,
            id::RESPONSE_INFORMATION,
            &self.response_information,
            |v| Value::Str(v),
        )?;
        opt(f, id::SERVER_REFERENCE, &self.server_reference, |v| {
            Value::Str(v)
        })?;
        opt(
            f,
            id::AUTHENTICATION_METHOD,
            &self.authentication_method,
            |v| Value::Str(v),
        )?;
        opt(f, id::AUTHENTICATION_DATA, &self.authentication_data, |v| {
            Value::Bin(v)
        })
    }
}

/// Size of a CONNACK body.
pub(crate) fn len(c: &ConnAck, version: ProtocolVersion) -> usize {
    let props = if version.is_v5() {
        properties::block_len(&c.properties)
    } else {
        0
    };
    2 + props
}

/// Writes a CONNACK body. Session Present is only sent with a success code (the spec
/// requires 0 otherwise) and never in MQTT 3.1, which has no such flag.
pub(crate) fn write(
    c: &ConnAck,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    // §3.2.2.3.4: Maximum QoS 2 is expressed by leaving the property out.
    if c.properties.maximum_qos == Some(QoS::ExactlyOnce) {
        return Err(EncodeError::InvalidPacket(
            "Maximum QoS property must be 0 or 1",
        ));
    }
    let session_present = c.session_present
        && c.reason_code == ReasonCode::SUCCESS
        && version != ProtocolVersion::V3_1;
    buf.put_u8(u8::from(session_present));
    if version.is_v5() {
        buf.put_u8(c.reason_code.0);
        properties::write(&c.properties, buf)
    } else {
        buf.put_u8(c.reason_code.to_v3_connack());
        Ok(())
    }
}
