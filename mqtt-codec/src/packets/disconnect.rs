//! DISCONNECT (MQTT 5 §3.14, 3.1.1 §3.14). 3.x has no body at all. In MQTT 5,
//! remaining length 0 means Normal disconnection without properties and 1 a reason code
//! without properties (§3.14.2.2.1); the encoder uses these short forms.

use bytes::{BufMut, BytesMut};

use super::read_reason;
use crate::properties::{self, id, opt, user, Context, Property, PropertySet, Value};
use crate::read::Reader;
use crate::{
    DecodeError, Disconnect, DisconnectProperties, EncodeError, PacketKind, ProtocolVersion,
    ReasonCode,
};

/// Reads a DISCONNECT body (3.x: must be empty, which the caller checks).
pub(crate) fn read(r: &mut Reader, version: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    if !version.is_v5() || r.is_empty() {
        return Ok(Disconnect::default());
    }
    let reason_code = read_reason(r, PacketKind::Disconnect)?;
    let properties = if r.is_empty() {
        DisconnectProperties::default()
    } else {
        read_properties(r)?
    };
    Ok(Disconnect {
        reason_code,
        properties,
    })
}

fn read_properties(r: &mut Reader) -> Result<DisconnectProperties, DecodeError> {
    let mut p = DisconnectProperties::default();
    properties::read(r, Context::Disconnect, |prop| {
        match prop {
            Property::SessionExpiryInterval(v) => p.session_expiry_interval = Some(v),
            Property::ReasonString(v) => p.reason_string = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            Property::ServerReference(v) => p.server_reference = Some(v),
            other => return Err(other.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

impl PropertySet for DisconnectProperties {
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
        opt(f, id::REASON_STRING, &self.reason_string, |v| Value::Str(v))?;
        user(f, &self.user_properties)?;
        opt(f, id::SERVER_REFERENCE, &self.server_reference, |v| {
            Value::Str(v)
        })
    }
}

/// Size of a DISCONNECT body.
pub(crate) fn len(d: &Disconnect, version: ProtocolVersion) -> usize {
    if !version.is_v5() {
        return 0;
    }
    match (d.reason_code, properties::content_len(&d.properties)) {
        (ReasonCode::NORMAL_DISCONNECTION, 0) => 0,
        // Always with the property length: the one-byte form is legal (§3.14.2.2.1) but
        // common clients (rumqttc 0.25) cannot parse it.
        _ => 1 + properties::block_len(&d.properties),
    }
}

/// Writes a DISCONNECT body.
pub(crate) fn write(
    d: &Disconnect,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Ok(());
    }
    let has_props = properties::content_len(&d.properties) > 0;
    if d.reason_code != ReasonCode::NORMAL_DISCONNECTION || has_props {
        buf.put_u8(d.reason_code.0);
        properties::write(&d.properties, buf)?;
    }
    Ok(())
}
