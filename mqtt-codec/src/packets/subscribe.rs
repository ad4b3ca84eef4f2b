//! SUBSCRIBE (MQTT 5 §3.8, 3.1.1 §3.8): packet id, properties (v5), then one or more
//! topic filters, each followed by a subscription options byte.
//!
//! Topic filters are decoded as UTF-8 strings but not validated here: MQTT 5 answers an
//! invalid filter per filter in SUBACK (0x8F), so the broker decides, using
//! [`crate::topic::validate_topic_filter`].

use bytes::{BufMut, BytesMut};

use crate::properties::{self, id, opt, user, Context, Property, PropertySet, Value};
use crate::read::Reader;
use crate::write::{binary_len, put_string};
use crate::{
    DecodeError, EncodeError, ProtocolVersion, QoS, RetainHandling, Subscribe, SubscribeFilter,
    SubscribeProperties, SubscriptionOptions,
};

// Subscription Options bits (§3.8.3.1): QoS is bits 0–1, Retain Handling bits 4–5,
// bits 6–7 reserved.
const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;

/// Reads a SUBSCRIBE body.
pub(crate) fn read(r: &mut Reader, version: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        read_properties(r)?
    } else {
        SubscribeProperties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = read_options(r.u8()?, version)?;
        if options.no_local && filter.starts_with("$share/") {
            // [MQTT-3.8.3-4]
            return Err(DecodeError::ProtocolError(
                "No Local on a shared subscription",
            ));
        }
        filters.push(SubscribeFilter { filter, options });
    }
    if filters.is_empty() {
        // [MQTT-3.8.3-2] (5.0), [MQTT-3.8.3-3] (3.1.1)
        return Err(DecodeError::ProtocolError(
            "SUBSCRIBE without topic filters",
        ));
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

/// Parses a subscription options byte.
///
/// 3.x: only the QoS bits exist; any other bit or QoS 3 is malformed [MQTT-3-8.3-4].
/// 5.0: reserved bits 6–7 are malformed [MQTT-3.8.3-5]; QoS 3 and Retain Handling 3 are
/// Protocol Errors (§3.8.3.1).
fn read_options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
    if !version.is_v5() {
        if byte & 0xFC != 0 {
            return Err(DecodeError::MalformedPacket(
                "reserved subscription option bits set",
            ));
        }
        let qos = QoS::from_u8(byte).ok_or(DecodeError::MalformedPacket("subscription QoS 3"))?;
        return Ok(SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        });
    }
    if byte & 0xC0 != 0 {
        return Err(DecodeError::MalformedPacket(
            "reserved subscription option bits set",
        ));
    }
    let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeError::ProtocolError("subscription QoS 3"))?;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(DecodeError::ProtocolError("retain handling 3")),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & NO_LOCAL != 0,
        retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

/// The options byte for `version` (only QoS before MQTT 5).
fn options_byte(o: &SubscriptionOptions, version: ProtocolVersion) -> u8 {
    let mut byte = o.qos as u8;
    if version.is_v5() {
        if o.no_local {
            byte |= NO_LOCAL;
        }
        if o.retain_as_published {
            byte |= RETAIN_AS_PUBLISHED;
        }
        byte |= (o.retain_handling as u8) << 4;
    }
    byte
}

fn read_properties(r: &mut Reader) -> Result<SubscribeProperties, DecodeError> {
    let mut p = SubscribeProperties::default();
    properties::read(r, Context::Subscribe, |prop| {
        match prop {
            Property::SubscriptionIdentifier(v) => p.subscription_identifier = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            other => return Err(other.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

impl PropertySet for SubscribeProperties {
    fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
    {
        opt(
            f,
            id::SUBSCRIPTION_IDENTIFIER,
            &self.subscription_identifier,
            |v| Value::Varint(*v),
        )?;
        user(f, &self.user_properties)
    }
}

/// Size of a SUBSCRIBE body.
pub(crate) fn len(s: &Subscribe, version: ProtocolVersion) -> usize {
    let filters: usize = s
        .filters
        .iter()
        .map(|f| binary_len(f.filter.as_bytes()) + 1)
        .sum();
    let props = if version.is_v5() {
        properties::block_len(&s.properties)
    } else {
        0
    };
    2 + props + filters
}

/// Writes a SUBSCRIBE body.
pub(crate) fn write(
    s: &Subscribe,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if s.packet_id == 0 {
        return Err(EncodeError::InvalidPacket("packet identifier 0"));
    }
    if s.filters.is_empty() {
        return Err(EncodeError::InvalidPacket(
            "SUBSCRIBE without topic filters",
        ));
    }
    if s.properties.subscription_identifier == Some(0) {
        return Err(EncodeError::InvalidPacket("subscription identifier 0"));
    }
    buf.put_u16(s.packet_id);
    if version.is_v5() {
        properties::write(&s.properties, buf)?;
    }
    for f in &s.filters {
        put_string(buf, &f.filter)?;
        buf.put_u8(options_byte(&f.options, version));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_byte_round_trips() {
        for byte in 0..=0x3Fu8 {
            let parsed = read_options(byte, ProtocolVersion::V5);
            let qos_ok = byte & 0x03 != 3;
            let rh_ok = (byte >> 4) & 0x03 != 3;
            match parsed {
                Ok(o) => {
                    assert!(qos_ok && rh_ok, "{byte:#x}");
                    assert_eq!(options_byte(&o, ProtocolVersion::V5), byte);
                }
                Err(e) => {
                    assert!(!(qos_ok && rh_ok), "{byte:#x}");
                    assert!(matches!(e, DecodeError::ProtocolError(_)));
                }
            }
        }
        for byte in 0x40..=0xFFu8 {
            assert!(matches!(
                read_options(byte, ProtocolVersion::V5),
                Err(DecodeError::MalformedPacket(_))
            ));
        }
    }

    #[test]
    fn v3_options_only_carry_qos() {
        let o = read_options(2, ProtocolVersion::V3_1_1).unwrap();
        assert_eq!(o.qos, QoS::ExactlyOnce);
        for byte in [3u8, 4, 0x10, 0x80] {
            assert!(matches!(
                read_options(byte, ProtocolVersion::V3_1_1),
                Err(DecodeError::MalformedPacket(_))
            ));
        }
        let full = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        };
        assert_eq!(options_byte(&full, ProtocolVersion::V3_1_1), 1);
        assert_eq!(options_byte(&full, ProtocolVersion::V5), 0b0010_1101);
    }
}
