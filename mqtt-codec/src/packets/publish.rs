//! PUBLISH (MQTT 5 §3.3, 3.1.1 §3.3), the hot path: decoding slices topic, properties
//! and payload out of the frame without copying or allocating.

use bytes::{BufMut, BytesMut};

use crate::properties::{self, id, opt, user, Context, Property, PropertySet, Value};
use crate::read::Reader;
use crate::write::{binary_len, put_string};
use crate::{
    DecodeError, EncodeError, ProtocolVersion, Publish, PublishProperties, PublishRef, QoS,
};

// Fixed header flag bits (§3.3.1); QoS is bits 1–2.
const DUP: u8 = 0x08;
const RETAIN: u8 = 0x01;

/// The fixed header flags: DUP, QoS, RETAIN.
pub(crate) fn flags(p: &PublishRef<'_>) -> u8 {
    let mut flags = (p.qos as u8) << 1;
    if p.dup {
        flags |= DUP;
    }
    if p.retain {
        flags |= RETAIN;
    }
    flags
}

/// Reads a PUBLISH body; `flags` is the fixed header's low nibble.
///
/// Topic rules: wildcards are never allowed (TopicNameInvalid). An empty topic is
/// TopicNameInvalid before MQTT 5; in MQTT 5 it is valid with a Topic Alias (the broker
/// resolves the alias) and a Protocol Error without one (§3.3.2.1).
pub(crate) fn read(
    flags: u8,
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    let qos =
        QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::MalformedPacket("PUBLISH QoS 3"))?;
    let dup = flags & DUP != 0;
    if dup && qos == QoS::AtMostOnce {
        // [MQTT-3.3.1-2]
        return Err(DecodeError::MalformedPacket("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = r.string()?;
    // The packet id exists only for QoS 1 and 2 [MQTT-2.2.1-2].
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(r.packet_id()?),
    };
    let properties = if version.is_v5() {
        read_properties(r)?
    } else {
        PublishProperties::default()
    };
    // Wildcards are never allowed in a topic name [MQTT-3.3.2-2]; both are ASCII, so a
    // byte scan is enough.
    let has_wildcard = topic.as_bytes().iter().any(|&b| b == b'+' || b == b'#');
    if topic.is_empty() {
        if !version.is_v5() {
            return Err(DecodeError::TopicNameInvalid("empty topic name"));
        }
        if properties.topic_alias.is_none() {
            return Err(DecodeError::ProtocolError(
                "empty topic name without topic alias",
            ));
        }
    } else if has_wildcard {
        return Err(DecodeError::TopicNameInvalid("wildcard in topic name"));
    }
    Ok(Publish {
        dup,
        qos,
        retain: flags & RETAIN != 0,
        topic,
        packet_id,
        // Everything after the variable header, possibly empty [MQTT-3.3.3].
        payload: r.rest(),
        properties,
    })
}

fn read_properties(r: &mut Reader) -> Result<PublishProperties, DecodeError> {
    let mut p = PublishProperties::default();
    properties::read(r, Context::Publish, |prop| {
        match prop {
            Property::PayloadFormatIndicator(v) => p.payload_format_indicator = Some(v),
            Property::MessageExpiryInterval(v) => p.message_expiry_interval = Some(v),
            Property::TopicAlias(v) => p.topic_alias = Some(v),
            Property::ResponseTopic(v) => p.response_topic = Some(super::response_topic(v)?),
            Property::CorrelationData(v) => p.correlation_data = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            Property::SubscriptionIdentifier(v) => p.subscription_identifiers.push(v),
            Property::ContentType(v) => p.content_type = Some(v),
            other => return Err(other.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

impl PropertySet for PublishProperties {
    fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
    {
        opt(
            f,
            id::PAYLOAD_FORMAT_INDICATOR,
            &self.payload_format_indicator,
            |v| Value::Byte(*v),
        )?;
        opt(
            f,
            id::MESSAGE_EXPIRY_INTERVAL,
            &self.message_expiry_interval,
            |v| Value::U32(*v),
        )?;
        opt(f, id::TOPIC_ALIAS, &self.topic_alias, |v| Value::U16(*v))?;
        opt(f, id::RESPONSE_TOPIC, &self.response_topic, |v| {
            Value::Str(v)
        })?;
        opt(f, id::CORRELATION_DATA, &self.correlation_data, |v| {
            Value::Bin(v)
        })?;
        user(f, &self.user_properties)?;
        for &sid in &self.subscription_identifiers {
            f(id::SUBSCRIPTION_IDENTIFIER, Value::Varint(sid))?;
        }
        opt(f, id::CONTENT_TYPE, &self.content_type, |v| Value::Str(v))
    }
}

/// Size of a PUBLISH body.
pub(crate) fn len(p: &PublishRef<'_>, version: ProtocolVersion) -> usize {
    let mut len = binary_len(p.topic.as_bytes()) + p.payload.len();
    if p.qos != QoS::AtMostOnce {
        len += 2;
    }
    if version.is_v5() {
        len += properties::block_len(p.properties);
    }
    len
}

/// Writes a PUBLISH body, refusing what the receiver would reject: a packet id that
/// does not match the QoS, DUP on QoS 0, an empty topic without a (v5) topic alias.
pub(crate) fn write(
    p: &PublishRef<'_>,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let packet_id = match (p.qos, p.packet_id) {
        (QoS::AtMostOnce, None) => None,
        (QoS::AtMostOnce, Some(_)) => {
            return Err(EncodeError::InvalidPacket("QoS 0 PUBLISH with a packet id"));
        }
        (_, None | Some(0)) => {
            return Err(EncodeError::InvalidPacket(
                "QoS > 0 PUBLISH without a non-zero packet id",
            ));
        }
        (_, Some(id)) => Some(id),
    };
    if p.dup && p.qos == QoS::AtMostOnce {
        return Err(EncodeError::InvalidPacket("DUP set on a QoS 0 PUBLISH"));
    }
    if p.topic.is_empty() && !(version.is_v5() && p.properties.topic_alias.is_some()) {
        return Err(EncodeError::InvalidPacket(
            "empty topic name without topic alias",
        ));
    }
    put_string(buf, p.topic)?;
    if let Some(id) = packet_id {
        buf.put_u16(id);
    }
    if version.is_v5() {
        properties::write(p.properties, buf)?;
    }
    buf.put_slice(p.payload);
    Ok(())
}
