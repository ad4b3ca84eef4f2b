//! AUTH (MQTT 5 §3.15), for enhanced authentication; it does not exist in 3.x.
//!
//! Remaining length 0 means Success without properties. Unlike DISCONNECT, the spec
//! gives AUTH no one-byte form: a reason code is always followed by a property block,
//! so remaining length 1 is malformed. Whether the Authentication Method is present and
//! matches CONNECT's is for the broker to check.

use bytes::{BufMut, BytesMut};

use super::read_reason;
use crate::properties::{self, id, opt, user, Context, Property, PropertySet, Value};
use crate::read::Reader;
use crate::{Auth, AuthProperties, DecodeError, EncodeError, PacketKind, ReasonCode};

/// Reads an AUTH body.
pub(crate) fn read(r: &mut Reader) -> Result<Auth, DecodeError> {
    if r.is_empty() {
        return Ok(Auth::default());
    }
    let reason_code = read_reason(r, PacketKind::Auth)?;
    let mut p = AuthProperties::default();
    properties::read(r, Context::Auth, |prop| {
        match prop {
            Property::AuthenticationMethod(v) => p.authentication_method = Some(v),
            Property::AuthenticationData(v) => p.authentication_data = Some(v),
            Property::ReasonString(v) => p.reason_string = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            other => return Err(other.not_allowed()),
        }
        Ok(())
    })?;
    Ok(Auth {
        reason_code,
        properties: p,
    })
}

impl PropertySet for AuthProperties {
    fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
    {
        opt(
            f,
            id::AUTHENTICATION_METHOD,
            &self.authentication_method,
            |v| Value::Str(v),
        )?;
        opt(f, id::AUTHENTICATION_DATA, &self.authentication_data, |v| {
            Value::Bin(v)
        })?;
        opt(f, id::REASON_STRING, &self.reason_string, |v| Value::Str(v))?;
        user(f, &self.user_properties)
    }
}

fn is_short(a: &Auth) -> bool {
    a.reason_code == ReasonCode::SUCCESS && properties::content_len(&a.properties) == 0
}

/// Size of an AUTH body.
pub(crate) fn len(a: &Auth) -> usize {
    if is_short(a) {
        0
    } else {
        1 + properties::block_len(&a.properties)
    }
}

/// Writes an AUTH body.
pub(crate) fn write(a: &Auth, buf: &mut BytesMut) -> Result<(), EncodeError> {
    if is_short(a) {
        return Ok(());
    }
    buf.put_u8(a.reason_code.0);
    properties::write(&a.properties, buf)
}
