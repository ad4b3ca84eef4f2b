//! UNSUBACK (MQTT 5 §3.11, 3.1.1 §3.11). In 3.x it carries only the packet id (the
//! model's `reason_codes` is then empty); in 5.0 properties and one reason code per
//! topic filter follow.

use bytes::{BufMut, BytesMut};

use super::{read_reason, read_reason_properties};
use crate::properties::{self, Context};
use crate::read::Reader;
use crate::{DecodeError, EncodeError, PacketKind, ProtocolVersion, UnsubAck};

/// Reads an UNSUBACK body.
pub(crate) fn read(r: &mut Reader, version: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    if !version.is_v5() {
        // Anything after the packet id is caught as trailing bytes by the caller.
        return Ok(UnsubAck {
            packet_id,
            reason_codes: Vec::new(),
            properties: Default::default(),
        });
    }
    let properties = read_reason_properties(r, Context::Ack)?;
    let mut reason_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        reason_codes.push(read_reason(r, PacketKind::UnsubAck)?);
    }
    if reason_codes.is_empty() {
        return Err(DecodeError::ProtocolError("UNSUBACK without reason codes"));
    }
    Ok(UnsubAck {
        packet_id,
        reason_codes,
        properties,
    })
}

/// Size of an UNSUBACK body.
pub(crate) fn len(u: &UnsubAck, version: ProtocolVersion) -> usize {
    if version.is_v5() {
        2 + properties::block_len(&u.properties) + u.reason_codes.len()
    } else {
        2
    }
}

/// Writes an UNSUBACK body.
pub(crate) fn write(
    u: &UnsubAck,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if u.packet_id == 0 {
        return Err(EncodeError::InvalidPacket("packet identifier 0"));
    }
    buf.put_u16(u.packet_id);
    if !version.is_v5() {
        return Ok(());
    }
    if u.reason_codes.is_empty() {
        return Err(EncodeError::InvalidPacket("UNSUBACK without reason codes"));
    }
    properties::write(&u.properties, buf)?;
    for reason in &u.reason_codes {
        buf.put_u8(reason.0);
    }
    Ok(())
}
