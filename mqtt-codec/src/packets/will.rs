//! The Will Message inside CONNECT's payload (MQTT 5 §3.1.3.2–3.1.3.4): Will
//! Properties (MQTT 5 only), Will Topic and Will Payload. QoS and retain travel in the
//! Connect Flags, so [`read`] takes them from the caller.

use bytes::BytesMut;

use crate::properties::{self, id, opt, user, Context, Property, PropertySet, Value};
use crate::read::Reader;
use crate::topic::validate_topic_name;
use crate::write::{binary_len, put_binary, put_string};
use crate::{DecodeError, EncodeError, LastWill, ProtocolVersion, QoS, WillProperties};

/// Reads Will Properties (v5), Will Topic and Will Payload.
pub(crate) fn read(
    r: &mut Reader,
    version: ProtocolVersion,
    qos: QoS,
    retain: bool,
) -> Result<LastWill, DecodeError> {
    let properties = if version.is_v5() {
        read_properties(r)?
    } else {
        WillProperties::default()
    };
    let topic = r.string()?;
    // The will is published like any message, so its topic follows the topic name
    // rules; MQTT 5 answers with CONNACK 0x90 (Topic Name invalid).
    if validate_topic_name(&topic).is_err() {
        return Err(DecodeError::TopicNameInvalid(
            "will topic is empty or has wildcards",
        ));
    }
    let payload = r.binary()?;
    Ok(LastWill {
        topic,
        payload,
        qos,
        retain,
        properties,
    })
}

fn read_properties(r: &mut Reader) -> Result<WillProperties, DecodeError> {
    let mut p = WillProperties::default();
    properties::read(r, Context::Will, |prop| {
        match prop {
            Property::WillDelayInterval(v) => p.will_delay_interval = Some(v),
            Property::PayloadFormatIndicator(v) => p.payload_format_indicator = Some(v),
            Property::MessageExpiryInterval(v) => p.message_expiry_interval = Some(v),
            Property::ContentType(v) => p.content_type = Some(v),
            Property::ResponseTopic(v) => p.response_topic = Some(super::response_topic(v)?),
            Property::CorrelationData(v) => p.correlation_data = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            other => return Err(other.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

impl PropertySet for WillProperties {
    fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
    {
        opt(f, id::WILL_DELAY_INTERVAL, &self.will_delay_interval, |v| {
            Value::U32(*v)
        })?;
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
        opt(f, id::CONTENT_TYPE, &self.content_type, |v| Value::Str(v))?;
        opt(f, id::RESPONSE_TOPIC, &self.response_topic, |v| {
            Value::Str(v)
        })?;
        opt(f, id::CORRELATION_DATA, &self.correlation_data, |v| {
            Value::Bin(v)
        })?;
        user(f, &self.user_properties)
    }
}

/// Size of the will fields in CONNECT's payload.
pub(crate) fn len(w: &LastWill, version: ProtocolVersion) -> usize {
    let props = if version.is_v5() {
        properties::block_len(&w.properties)
    } else {
        0
    };
    props + binary_len(w.topic.as_bytes()) + binary_len(&w.payload)
}

/// Writes the will fields of CONNECT's payload.
pub(crate) fn write(
    w: &LastWill,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if version.is_v5() {
        properties::write(&w.properties, buf)?;
    }
    put_string(buf, &w.topic)?;
    put_binary(buf, &w.payload)
}
