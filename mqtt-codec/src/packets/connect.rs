//! CONNECT (MQTT 5 §3.1, 3.1.1 §3.1, 3.1): the protocol name and level decide the
//! version of everything that follows, so this reader takes no version argument.

use bytes::{BufMut, BytesMut};

use super::will;
use crate::properties::{self, id, opt, user, Context, Property, PropertySet, Value};
use crate::read::{parse_varint, Reader};
use crate::write::{binary_len, put_binary, put_string};
use crate::{Connect, ConnectProperties, DecodeError, EncodeError, ProtocolVersion, QoS};

// Connect Flags bits (§3.1.2.3); Will QoS is bits 3–4.
/// Must be 0 [MQTT-3.1.2-3].
const RESERVED: u8 = 0x01;
/// Clean Session (3.x) / Clean Start (5.0).
const CLEAN_START: u8 = 0x02;
/// A Will Message (properties, topic, payload) follows the client id.
const WILL: u8 = 0x04;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

/// The protocol name each version puts on the wire.
fn protocol_name(version: ProtocolVersion) -> &'static [u8] {
    match version {
        ProtocolVersion::V3_1 => b"MQIsdp",
        ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => b"MQTT",
    }
}

/// Maps protocol name and level to a version: "MQTT" with 4 or 5, "MQIsdp" with 3.
fn protocol(name: &[u8], level: u8) -> Result<ProtocolVersion, DecodeError> {
    match (name, level) {
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQTT" | b"MQIsdp", level) => Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

/// The protocol version a whole CONNECT frame (fixed header included) asks for, if its
/// name and level are valid, however broken the rest is. Lets the broker answer a bad
/// CONNECT with a CONNACK in the client's version.
pub fn connect_version(frame: &[u8]) -> Option<ProtocolVersion> {
    if frame.first()? >> 4 != 1 {
        return None;
    }
    let (_, len) = parse_varint(frame.get(1..)?).ok()??;
    let body = frame.get(1 + len..)?;
    let name_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let name = body.get(2..2 + name_len)?;
    protocol(name, *body.get(2 + name_len)?).ok()
}

/// Reads a CONNECT body.
pub(crate) fn read(r: &mut Reader) -> Result<Connect, DecodeError> {
    // Compared as raw bytes: any name but the two known ones is rejected anyway.
    let name = r.binary()?;
    let protocol = protocol(&name, r.u8()?)?;
    let v5 = protocol.is_v5();
    let flags = r.u8()?;
    if flags & RESERVED != 0 {
        return Err(DecodeError::MalformedPacket("CONNECT reserved flag set"));
    }
    let will_qos = (flags >> 3) & 0x03;
    if flags & WILL == 0 && (will_qos != 0 || flags & WILL_RETAIN != 0) {
        return Err(DecodeError::MalformedPacket(
            "will QoS or retain set without will flag",
        ));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::MalformedPacket("will QoS 3"))?;
    if flags & PASSWORD != 0 && flags & USERNAME == 0 && !v5 {
        // [MQTT-3.1.2-22]; MQTT 5 allows a password without a user name.
        return Err(DecodeError::MalformedPacket(
            "password flag without user name flag",
        ));
    }
    let keep_alive = r.u16()?;
    // Field order is fixed [MQTT-3.1.3-1]: properties (v5), client id, will, user
    // name, password; presence is decided by the flags above.
    let properties = if v5 {
        read_properties(r)?
    } else {
        ConnectProperties::default()
    };
    let client_id = r.string()?;
    let will = if flags & WILL != 0 {
        Some(will::read(r, protocol, will_qos, flags & WILL_RETAIN != 0)?)
    } else {
        None
    };
    // MQTT 3.1 clients may flag a user name or password and leave it out (mosquitto
    // accepts that too); later versions require it [MQTT-3.1.2-17, -19].
    let missing_ok = |r: &Reader| protocol == ProtocolVersion::V3_1 && r.is_empty();
    let username = if flags & USERNAME != 0 && !missing_ok(r) {
        Some(r.string()?)
    } else {
        None
    };
    let password = if flags & PASSWORD != 0 && !missing_ok(r) {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start: flags & CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn read_properties(r: &mut Reader) -> Result<ConnectProperties, DecodeError> {
    let mut p = ConnectProperties::default();
    properties::read(r, Context::Connect, |prop| {
        match prop {
            Property::SessionExpiryInterval(v) => p.session_expiry_interval = Some(v),
            Property::ReceiveMaximum(v) => p.receive_maximum = Some(v),
            Property::MaximumPacketSize(v) => p.maximum_packet_size = Some(v),
            Property::TopicAliasMaximum(v) => p.topic_alias_maximum = Some(v),
            Property::RequestResponseInformation(v) => p.request_response_information = Some(v),
            Property::RequestProblemInformation(v) => p.request_problem_information = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            Property::AuthenticationMethod(v) => p.authentication_method = Some(v),
            Property::AuthenticationData(v) => p.authentication_data = Some(v),
            other => return Err(other.not_allowed()),
        }
        Ok(())
    })?;
    // §3.1.2.11.10: data only makes sense for a method.
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::ProtocolError(
            "authentication data without method",
        ));
    }
    Ok(p)
}

impl PropertySet for ConnectProperties {
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
        opt(f, id::MAXIMUM_PACKET_SIZE, &self.maximum_packet_size, |v| {
            Value::U32(*v)
        })?;
        opt(f, id::TOPIC_ALIAS_MAXIMUM, &self.topic_alias_maximum, |v| {
            Value::U16(*v)
        })?;
        opt(
            f,
            id::REQUEST_RESPONSE_INFORMATION,
            &self.request_response_information,
            |v| Value::Byte(u8::from(*v)),
        )?;
        opt(
            f,
            id::REQUEST_PROBLEM_INFORMATION,
            &self.request_problem_information,
            |v| Value::Byte(u8::from(*v)),
        )?;
        user(f, &self.user_properties)?;
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

/// Size of a CONNECT body, in the packet's own protocol version.
pub(crate) fn len(c: &Connect) -> usize {
    let v = c.protocol;
    let mut len = binary_len(protocol_name(v)) + 1 + 1 + 2 + binary_len(c.client_id.as_bytes());
    if v.is_v5() {
        len += properties::block_len(&c.properties);
    }
    if let Some(w) = &c.will {
        len += will::len(w, v);
    }
    len += c.username.as_ref().map_or(0, |u| binary_len(u.as_bytes()));
    len + c.password.as_ref().map_or(0, |p| binary_len(p))
}

/// Writes a CONNECT body in the packet's own protocol version; the flags are derived
/// from which optional fields are present, so they cannot disagree with the payload.
pub(crate) fn write(c: &Connect, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let v = c.protocol;
    // 3.1.1 readers treat this as malformed [MQTT-3.1.2-22]; refuse rather than send it.
    if c.password.is_some() && c.username.is_none() && !v.is_v5() {
        return Err(EncodeError::InvalidPacket(
            "password without user name before MQTT 5",
        ));
    }
    let mut flags = 0;
    if c.clean_start {
        flags |= CLEAN_START;
    }
    if let Some(w) = &c.will {
        flags |= WILL | (w.qos as u8) << 3;
        if w.retain {
            flags |= WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    if c.password.is_some() {
        flags |= PASSWORD;
    }
    put_binary(buf, protocol_name(v))?;
    buf.put_u8(v.level());
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    if v.is_v5() {
        properties::write(&c.properties, buf)?;
    }
    put_string(buf, &c.client_id)?;
    if let Some(w) = &c.will {
        will::write(w, v, buf)?;
    }
    if let Some(u) = &c.username {
        put_string(buf, u)?;
    }
    if let Some(p) = &c.password {
        put_binary(buf, p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_name_and_level() {
        assert_eq!(protocol(b"MQTT", 4), Ok(ProtocolVersion::V3_1_1));
        assert_eq!(protocol(b"MQTT", 5), Ok(ProtocolVersion::V5));
        assert_eq!(protocol(b"MQIsdp", 3), Ok(ProtocolVersion::V3_1));
        assert_eq!(
            protocol(b"MQTT", 3),
            Err(DecodeError::UnsupportedProtocolVersion(3))
        );
        assert_eq!(
            protocol(b"MQIsdp", 4),
            Err(DecodeError::UnsupportedProtocolVersion(4))
        );
        assert_eq!(
            protocol(b"MQTT", 6),
            Err(DecodeError::UnsupportedProtocolVersion(6))
        );
        assert_eq!(protocol(b"mqtt", 4), Err(DecodeError::InvalidProtocolName));
        assert_eq!(protocol(b"XQTT", 5), Err(DecodeError::InvalidProtocolName));
    }

    #[test]
    fn peeks_the_version_of_a_broken_connect() {
        // Valid name and level, then garbage.
        let frame = b"\x10\x08\x00\x04MQTT\x05\xFF";
        assert_eq!(connect_version(frame), Some(ProtocolVersion::V5));
        assert_eq!(
            connect_version(b"\x10\x07\x00\x04MQTT\x04"),
            Some(ProtocolVersion::V3_1_1)
        );
        assert_eq!(connect_version(b"\x10\x07\x00\x04MQTT\x07"), None);
        assert_eq!(connect_version(b"\x10\x07\x00\x04MQTT"), None);
        assert_eq!(connect_version(b"\x20\x02\x00\x00"), None);
        assert_eq!(connect_version(b""), None);
    }
}
