//! One module per control packet (the rumqttd/mqttbytes layout), each with `read`,
//! `len` and `write` for its body; this module dispatches on the fixed header and holds
//! what several packets share.

mod auth;
mod connack;
mod connect;
mod disconnect;
pub(crate) mod publish;
mod pubresponse;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;
mod will;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

pub use connect::connect_version;

use crate::properties::{self, id, opt, user, Context, Property, PropertySet, Value};
use crate::read::Reader;
use crate::topic::validate_topic_name;
use crate::{
    DecodeError, EncodeError, Packet, PacketKind, ProtocolVersion, ReasonCode, ReasonProperties,
};

/// Decodes one packet body. `header` is the fixed header's first byte; `version` is
/// `None` until CONNECT has been seen, and then only CONNECT is accepted.
pub(crate) fn read(
    header: u8,
    body: Bytes,
    version: Option<ProtocolVersion>,
) -> Result<Packet, DecodeError> {
    // Type in the high nibble, flags in the low one (§2.1.2, §2.1.3).
    let (kind, flags) = (header >> 4, header & 0x0F);
    if kind == 0 {
        return Err(DecodeError::MalformedPacket("reserved packet type 0"));
    }
    let mut r = Reader::new(body);
    let packet = if kind == PacketKind::Connect as u8 {
        if flags != 0 {
            return Err(DecodeError::MalformedPacket("invalid fixed header flags"));
        }
        // A second CONNECT decodes too; rejecting it [MQTT-3.1.0-2] is the broker's call.
        Packet::Connect(Box::new(connect::read(&mut r)?))
    } else {
        let version = version.ok_or(DecodeError::ProtocolError("first packet must be CONNECT"))?;
        read_after_connect(kind, flags, &mut r, version)?
    };
    r.expect_end()?;
    Ok(packet)
}

fn read_after_connect(
    kind: u8,
    flags: u8,
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    // PUBLISH flags carry DUP/QoS/RETAIN and are checked by its reader.
    if kind != PacketKind::Publish as u8 {
        check_flags(kind, flags, version)?;
    }
    Ok(match kind {
        2 => Packet::ConnAck(connack::read(r, version)?),
        3 => Packet::Publish(publish::read(flags, r, version)?),
        4 => Packet::PubAck(pubresponse::read(r, version, PacketKind::PubAck)?),
        5 => Packet::PubRec(pubresponse::read(r, version, PacketKind::PubRec)?),
        6 => Packet::PubRel(pubresponse::read(r, version, PacketKind::PubRel)?),
        7 => Packet::PubComp(pubresponse::read(r, version, PacketKind::PubComp)?),
        8 => Packet::Subscribe(subscribe::read(r, version)?),
        9 => Packet::SubAck(suback::read(r, version)?),
        10 => Packet::Unsubscribe(unsubscribe::read(r, version)?),
        11 => Packet::UnsubAck(unsuback::read(r, version)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(disconnect::read(r, version)?),
        15 if version.is_v5() => Packet::Auth(auth::read(r)?),
        15 => return Err(DecodeError::MalformedPacket("AUTH before MQTT 5")),
        _ => return Err(DecodeError::MalformedPacket("reserved packet type")),
    })
}

/// Checks the fixed header flags of every packet but PUBLISH [MQTT-2.1.3-1]: 0b0010 for
/// PUBREL, SUBSCRIBE and UNSUBSCRIBE, 0 otherwise. MQTT 3.1 set DUP on resent PUBREL,
/// SUBSCRIBE and UNSUBSCRIBE, so for 3.1 that bit is ignored on those three.
fn check_flags(kind: u8, flags: u8, version: ProtocolVersion) -> Result<(), DecodeError> {
    let expected = match kind {
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    let flags = if version == ProtocolVersion::V3_1 && expected != 0 {
        flags & 0b0111
    } else {
        flags
    };
    if flags == expected {
        Ok(())
    } else {
        Err(DecodeError::MalformedPacket("invalid fixed header flags"))
    }
}

/// The fixed header's first byte.
pub(crate) fn header_byte(packet: &Packet) -> u8 {
    let flags = match packet {
        Packet::Publish(p) => publish::flags(&p.as_ref()),
        Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
        _ => 0,
    };
    (packet.kind() as u8) << 4 | flags
}

/// The version a packet is encoded in: CONNECT carries its own.
pub(crate) fn wire_version(packet: &Packet, version: ProtocolVersion) -> ProtocolVersion {
    match packet {
        Packet::Connect(c) => c.protocol,
        _ => version,
    }
}

/// Size of the body (the value of Remaining Length).
pub(crate) fn body_len(packet: &Packet, version: ProtocolVersion) -> usize {
    match packet {
        Packet::Connect(c) => connect::len(c),
        Packet::ConnAck(c) => connack::len(c, version),
        Packet::Publish(p) => publish::len(&p.as_ref(), version),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            pubresponse::len(p, version)
        }
        Packet::Subscribe(s) => subscribe::len(s, version),
        Packet::SubAck(s) => suback::len(s, version),
        Packet::Unsubscribe(u) => unsubscribe::len(u, version),
        Packet::UnsubAck(u) => unsuback::len(u, version),
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => disconnect::len(d, version),
        Packet::Auth(a) => auth::len(a),
    }
}

/// Writes the body.
pub(crate) fn write_body(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(c) => connect::write(c, buf),
        Packet::ConnAck(c) => connack::write(c, version, buf),
        Packet::Publish(p) => publish::write(&p.as_ref(), version, buf),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            pubresponse::write(p, version, buf)
        }
        Packet::Subscribe(s) => subscribe::write(s, version, buf),
        Packet::SubAck(s) => suback::write(s, version, buf),
        Packet::Unsubscribe(u) => unsubscribe::write(u, version, buf),
        Packet::UnsubAck(u) => unsuback::write(u, version, buf),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => disconnect::write(d, version, buf),
        Packet::Auth(_) if !version.is_v5() => {
            Err(EncodeError::InvalidPacket("AUTH exists only in MQTT 5"))
        }
        Packet::Auth(a) => auth::write(a, buf),
    }
}

/// Reads one reason code and checks that MQTT 5 allows it in `kind`. An unknown or
/// misplaced code parses fine but breaks the sender's obligation to use the codes of
/// Table 2-6, hence a Protocol Error rather than a Malformed Packet.
fn read_reason(r: &mut Reader, kind: PacketKind) -> Result<ReasonCode, DecodeError> {
    let reason = ReasonCode(r.u8()?);
    if reason.is_valid_for(kind) {
        Ok(reason)
    } else {
        Err(DecodeError::ProtocolError(
            "reason code not valid for this packet",
        ))
    }
}

/// A Response Topic must be a valid topic name: no wildcards [MQTT-3.3.2-14], not empty.
fn response_topic(topic: ByteString) -> Result<ByteString, DecodeError> {
    match validate_topic_name(&topic) {
        Ok(()) => Ok(topic),
        Err(_) => Err(DecodeError::ProtocolError(
            "response topic is not a valid topic name",
        )),
    }
}

/// Reads the reason string / user properties block of the acknowledgements.
fn read_reason_properties(r: &mut Reader, ctx: Context) -> Result<ReasonProperties, DecodeError> {
    let mut p = ReasonProperties::default();
    properties::read(r, ctx, |prop| {
        match prop {
            Property::ReasonString(v) => p.reason_string = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            other => return Err(other.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

impl PropertySet for ReasonProperties {
    fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
    {
        opt(f, id::REASON_STRING, &self.reason_string, |v| Value::Str(v))?;
        user(f, &self.user_properties)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_header_flags() {
        let v311 = ProtocolVersion::V3_1_1;
        for kind in 2..=15u8 {
            let expected = if matches!(kind, 6 | 8 | 10) { 2 } else { 0 };
            for flags in 0..16u8 {
                assert_eq!(
                    check_flags(kind, flags, v311).is_ok(),
                    flags == expected,
                    "{kind} {flags:#b}"
                );
            }
        }
        // MQTT 3.1 resends PUBREL/SUBSCRIBE/UNSUBSCRIBE with DUP set.
        assert!(check_flags(6, 0b1010, ProtocolVersion::V3_1).is_ok());
        assert!(check_flags(6, 0b1010, ProtocolVersion::V5).is_err());
        assert!(check_flags(12, 0b1000, ProtocolVersion::V3_1).is_err());
    }
}
