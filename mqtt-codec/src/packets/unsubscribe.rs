//! UNSUBSCRIBE (MQTT 5 §3.10, 3.1.1 §3.10): packet id, properties (v5: user properties
//! only), then one or more topic filters. Filters are not validated here (see
//! `subscribe.rs`): UNSUBACK answers them one by one.

use bytes::{BufMut, BytesMut};

use crate::properties::{self, user, Context, Property, PropertySet, Value};
use crate::read::Reader;
use crate::write::{binary_len, put_string};
use crate::{DecodeError, EncodeError, ProtocolVersion, Unsubscribe, UserProperties};

/// Reads an UNSUBSCRIBE body.
pub(crate) fn read(r: &mut Reader, version: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut user_properties = UserProperties::new();
    if version.is_v5() {
        properties::read(r, Context::Unsubscribe, |prop| match prop {
            Property::User(k, v) => {
                user_properties.push((k, v));
                Ok(())
            }
            other => Err(other.not_allowed()),
        })?;
    }
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        // [MQTT-3.10.3-2]
        return Err(DecodeError::ProtocolError(
            "UNSUBSCRIBE without topic filters",
        ));
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        user_properties,
    })
}

/// UNSUBSCRIBE's property block holds user properties only.
struct UserOnly<'a>(&'a UserProperties);

impl PropertySet for UserOnly<'_> {
    fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
    {
        user(f, self.0)
    }
}

/// Size of an UNSUBSCRIBE body.
pub(crate) fn len(u: &Unsubscribe, version: ProtocolVersion) -> usize {
    let filters: usize = u.filters.iter().map(|f| binary_len(f.as_bytes())).sum();
    let props = if version.is_v5() {
        properties::block_len(&UserOnly(&u.user_properties))
    } else {
        0
    };
    2 + props + filters
}

/// Writes an UNSUBSCRIBE body.
pub(crate) fn write(
    u: &Unsubscribe,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if u.packet_id == 0 {
        return Err(EncodeError::InvalidPacket("packet identifier 0"));
    }
    if u.filters.is_empty() {
        return Err(EncodeError::InvalidPacket(
            "UNSUBSCRIBE without topic filters",
        ));
    }
    buf.put_u16(u.packet_id);
    if version.is_v5() {
        properties::write(&UserOnly(&u.user_properties), buf)?;
    }
    for f in &u.filters {
        put_string(buf, f)?;
    }
    Ok(())
}
