//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5 §3.4–3.7): one body layout for all four.
//!
//! MQTT 5 shortens the body when it can: remaining length 2 means Success without
//! properties, 3 means a reason code without properties. The encoder uses the shortest
//! form that carries the packet's content.

use bytes::{BufMut, BytesMut};

use super::{read_reason, ReasonProperties};
use crate::properties::{self, Context};
use crate::read::Reader;
use crate::{DecodeError, EncodeError, PacketKind, ProtocolVersion, PubResponse, ReasonCode};

/// Reads the body of the acknowledgement `kind`.
pub(crate) fn read(
    r: &mut Reader,
    version: ProtocolVersion,
    kind: PacketKind,
) -> Result<PubResponse, DecodeError> {
    let packet_id = r.packet_id()?;
    if !version.is_v5() || r.is_empty() {
        // 3.x: anything left is caught as trailing bytes by the caller.
        return Ok(PubResponse::new(packet_id));
    }
    let reason_code = read_reason(r, kind)?;
    let properties = if r.is_empty() {
        ReasonProperties::default()
    } else {
        super::read_reason_properties(r, Context::Ack)?
    };
    Ok(PubResponse {
        packet_id,
        reason_code,
        properties,
    })
}

/// Size of the body.
pub(crate) fn len(p: &PubResponse, version: ProtocolVersion) -> usize {
    if !version.is_v5() {
        return 2;
    }
    let props = properties::content_len(&p.properties);
    match (p.reason_code, props) {
        (ReasonCode::SUCCESS, 0) => 2,
        (_, 0) => 3,
        _ => 3 + properties::block_len(&p.properties),
    }
}

/// Writes the body.
pub(crate) fn write(
    p: &PubResponse,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if p.packet_id == 0 {
        return Err(EncodeError::InvalidPacket("packet identifier 0"));
    }
    buf.put_u16(p.packet_id);
    if !version.is_v5() {
        return Ok(());
    }
    let has_props = properties::content_len(&p.properties) > 0;
    if p.reason_code != ReasonCode::SUCCESS || has_props {
        buf.put_u8(p.reason_code.0);
    }
    if has_props {
        properties::write(&p.properties, buf)?;
    }
    Ok(())
}
