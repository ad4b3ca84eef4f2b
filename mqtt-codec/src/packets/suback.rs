//! SUBACK (MQTT 5 §3.9, 3.1.1 §3.9): packet id, properties (v5), then one reason code
//! per topic filter of the SUBSCRIBE it answers.
//!
//! 3.x only knows granted QoS 0–2 and failure 0x80: encoding maps every failure code
//! (and any code 3.x cannot express) to 0x80.

use bytes::{BufMut, BytesMut};

use super::{read_reason, read_reason_properties};
use crate::properties::{self, Context};
use crate::read::Reader;
use crate::{DecodeError, EncodeError, PacketKind, ProtocolVersion, ReasonCode, SubAck};

/// Reads a SUBACK body.
pub(crate) fn read(r: &mut Reader, version: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        read_reason_properties(r, Context::Ack)?
    } else {
        Default::default()
    };
    let mut reason_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let reason = if version.is_v5() {
            read_reason(r, PacketKind::SubAck)?
        } else {
            match r.u8()? {
                code @ (0x00..=0x02 | 0x80) => ReasonCode(code),
                _ => return Err(DecodeError::ProtocolError("invalid SUBACK return code")),
            }
        };
        reason_codes.push(reason);
    }
    if reason_codes.is_empty() {
        return Err(DecodeError::ProtocolError("SUBACK without reason codes"));
    }
    Ok(SubAck {
        packet_id,
        reason_codes,
        properties,
    })
}

/// The byte for `reason` in `version`.
fn code_byte(reason: ReasonCode, version: ProtocolVersion) -> u8 {
    match reason.0 {
        code @ 0x00..=0x02 => code,
        code if version.is_v5() => code,
        _ => 0x80,
    }
}

/// Size of a SUBACK body.
pub(crate) fn len(s: &SubAck, version: ProtocolVersion) -> usize {
    let props = if version.is_v5() {
        properties::block_len(&s.properties)
    } else {
        0
    };
    2 + props + s.reason_codes.len()
}

/// Writes a SUBACK body.
pub(crate) fn write(
    s: &SubAck,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if s.packet_id == 0 {
        return Err(EncodeError::InvalidPacket("packet identifier 0"));
    }
    if s.reason_codes.is_empty() {
        return Err(EncodeError::InvalidPacket("SUBACK without reason codes"));
    }
    buf.put_u16(s.packet_id);
    if version.is_v5() {
        properties::write(&s.properties, buf)?;
    }
    for &reason in &s.reason_codes {
        buf.put_u8(code_byte(reason, version));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_failures_collapse_to_0x80() {
        let v3 = ProtocolVersion::V3_1_1;
        assert_eq!(code_byte(ReasonCode::GRANTED_QOS_1, v3), 0x01);
        assert_eq!(code_byte(ReasonCode::NOT_AUTHORIZED, v3), 0x80);
        assert_eq!(code_byte(ReasonCode::TOPIC_FILTER_INVALID, v3), 0x80);
        assert_eq!(code_byte(ReasonCode(0x10), v3), 0x80);
        assert_eq!(
            code_byte(ReasonCode::NOT_AUTHORIZED, ProtocolVersion::V5),
            0x87
        );
    }
}
