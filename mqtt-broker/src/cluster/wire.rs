//! Forward requests encoded straight from the broker's messages.
//!
//! On the wire a [`ForwardBatch`] is a `pb::ForwardRequest`, byte for byte, and the
//! receiver decodes it as one. Building a `pb::ForwardRequest` first meant one
//! `pb::ForwardedMessage` per message: three shared buffers cloned (topic, payload,
//! publisher), a struct of some 330 bytes moved into a vector, and all of it dropped
//! again once encoded. In a cross-node flood that was about a third of the forward
//! thread's CPU. Here each message is written from the [`Message`] itself, its length
//! worked out once when the batch is made.

use std::sync::Arc;

use bytes::{Buf, BufMut};
use prost::encoding::{
    encode_key, encode_varint, encoded_len_varint, key_len, skip_field, DecodeContext, WireType,
};
use prost::DecodeError;
use robustmq_proto::broker as pb;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

use super::convert::{self, Clock};
use crate::message::Message;
use crate::router::SharedKey;

/// Field numbers of `ForwardRequest` in `broker.proto`.
mod request {
    pub const FROM_NODE: u32 = 1;
    pub const EPOCH: u32 = 2;
    pub const MESSAGES: u32 = 3;
    pub const STREAM_ID: u32 = 4;
}

/// Field numbers of `ForwardedMessage` (and of its `UserProperty` and `SharedGroup`).
mod forwarded {
    pub const TOPIC: u32 = 1;
    pub const PAYLOAD: u32 = 2;
    pub const QOS: u32 = 3;
    pub const RETAIN: u32 = 4;
    pub const PUBLISHER: u32 = 5;
    pub const PAYLOAD_FORMAT_INDICATOR: u32 = 6;
    pub const EXPIRY_REMAINING_MS: u32 = 7;
    pub const CONTENT_TYPE: u32 = 8;
    pub const RESPONSE_TOPIC: u32 = 9;
    pub const CORRELATION_DATA: u32 = 10;
    pub const USER_PROPERTIES: u32 = 11;
    pub const SHARED_GROUPS: u32 = 12;
    pub const RECEIVED_UNIX_NANOS: u32 = 13;
    pub const TRACEPARENT: u32 = 14;
    pub const SEQ: u32 = 15;
    /// `UserProperty.key` / `SharedGroup.group`, and `UserProperty.value` /
    /// `SharedGroup.filter`: both are pairs of strings.
    pub const PAIR_FIRST: u32 = 1;
    pub const PAIR_SECOND: u32 = 2;
}

/// One `ForwardRequest`, ready to encode.
#[derive(Debug, Default)]
pub struct ForwardBatch {
    from_node: u64,
    epoch: u64,
    stream_id: u64,
    messages: Vec<WireMessage>,
    len: usize,
}

/// One message of a batch, as this peer gets it.
#[derive(Debug)]
pub struct WireMessage {
    message: Arc<Message>,
    /// The shared groups the peer delivers it for.
    shared: Vec<SharedKey>,
    /// Of the sender's `mqtt.forward` span, when the message is traced.
    traceparent: Option<String>,
    seq: u64,
    received_unix_nanos: u64,
    expiry_remaining_ms: Option<u64>,
    /// Encoded length, without the field key and length prefix.
    len: usize,
}

impl WireMessage {
    /// `message` as forwarded at `clock` (the sender's), the n-th (`seq`) of its stream.
    pub fn new(
        message: Arc<Message>,
        shared: Vec<SharedKey>,
        traceparent: Option<String>,
        seq: u64,
        clock: Clock,
    ) -> Self {
        let (received_unix_nanos, expiry_remaining_ms) = convert::travel_times(&message, clock);
        let mut wire = Self {
            message,
            shared,
            traceparent,
            seq,
            received_unix_nanos,
            expiry_remaining_ms,
            len: 0,
        };
        wire.len = Length::of(|w| wire.fields(w));
        wire
    }

    /// Writes every field that `pb::ForwardedMessage` would, in its order, leaving out
    /// the proto3 defaults as prost does.
    fn fields(&self, w: &mut impl FieldWriter) {
        use forwarded::*;
        let m = &*self.message;
        let p = &m.properties;
        w.bytes(TOPIC, m.topic.as_bytes(), false);
        w.bytes(PAYLOAD, &m.payload, false);
        w.varint(QOS, m.qos as u64, false);
        w.varint(RETAIN, u64::from(m.retain), false);
        w.bytes(PUBLISHER, m.publisher.as_bytes(), false);
        if let Some(pfi) = p.payload_format_indicator {
            w.varint(PAYLOAD_FORMAT_INDICATOR, u64::from(pfi), true);
        }
        if let Some(ms) = self.expiry_remaining_ms {
            w.varint(EXPIRY_REMAINING_MS, ms, true);
        }
        if let Some(content_type) = &p.content_type {
            w.bytes(CONTENT_TYPE, content_type.as_bytes(), true);
        }
        if let Some(response_topic) = &p.response_topic {
            w.bytes(RESPONSE_TOPIC, response_topic.as_bytes(), true);
        }
        if let Some(correlation_data) = &p.correlation_data {
            w.bytes(CORRELATION_DATA, correlation_data, true);
        }
        for (key, value) in &p.user_properties {
            w.pair(USER_PROPERTIES, key.as_bytes(), value.as_bytes());
        }
        for key in &self.shared {
            w.pair(SHARED_GROUPS, key.group.as_bytes(), key.filter.as_bytes());
        }
        w.varint(RECEIVED_UNIX_NANOS, self.received_unix_nanos, false);
        if let Some(traceparent) = &self.traceparent {
            w.bytes(TRACEPARENT, traceparent.as_bytes(), true);
        }
        w.varint(SEQ, self.seq, false);
    }
}

impl ForwardBatch {
    pub fn new(from_node: u64, epoch: u64, stream_id: u64, messages: Vec<WireMessage>) -> Self {
        let mut batch = Self {
            from_node,
            epoch,
            stream_id,
            messages,
            len: 0,
        };
        batch.len = Length::of(|w| batch.fields(w));
        batch
    }

    fn fields(&self, w: &mut impl FieldWriter) {
        w.varint(request::FROM_NODE, self.from_node, false);
        w.varint(request::EPOCH, self.epoch, false);
        for message in &self.messages {
            w.message(request::MESSAGES, message);
        }
        w.varint(request::STREAM_ID, self.stream_id, false);
    }
}

impl prost::Message for ForwardBatch {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.fields(&mut Writer(buf));
    }

    /// Never decoded: the receiver reads a `pb::ForwardRequest`. Decoding one yields an
    /// empty batch, the fields skipped.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// The forward stream's codec: [`ForwardBatch`]es out, `pb::ForwardResponse`s in.
///
/// Unlike prost's encoder it makes room for the whole batch before writing it. tonic's
/// buffer starts small and is handed off after every request, so a batch of a thousand
/// messages (some 100 KiB) otherwise grew it four or five times over, each time copying
/// what was already written.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForwardCodec;

impl Codec for ForwardCodec {
    type Encode = ForwardBatch;
    type Decode = pb::ForwardResponse;
    type Encoder = ForwardEncoder;
    type Decoder = ProstDecoder<pb::ForwardResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        ForwardEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// See [`ForwardCodec`].
#[derive(Debug)]
pub struct ForwardEncoder;

impl Encoder for ForwardEncoder {
    type Item = ForwardBatch;
    type Error = tonic::Status;

    fn encode(&mut self, batch: ForwardBatch, buf: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        buf.reserve(batch.len);
        prost::Message::encode_raw(&batch, buf);
        Ok(())
    }
}

/// Where the fields of a message go: a buffer, or a running length.
trait FieldWriter {
    /// A varint field (integers, bools); `always` for an `optional` one that is set.
    fn varint(&mut self, tag: u32, value: u64, always: bool);
    /// A length-delimited field (bytes, strings).
    fn bytes(&mut self, tag: u32, value: &[u8], always: bool);
    /// A message of two string fields (`UserProperty`, `SharedGroup`).
    fn pair(&mut self, tag: u32, first: &[u8], second: &[u8]);
    /// A message of the batch.
    fn message(&mut self, tag: u32, message: &WireMessage);
}

struct Length(usize);

impl Length {
    /// How many bytes `write` writes.
    fn of(write: impl FnOnce(&mut Self)) -> usize {
        let mut len = Length(0);
        write(&mut len);
        len.0
    }
}

impl FieldWriter for Length {
    fn varint(&mut self, tag: u32, value: u64, always: bool) {
        if always || value != 0 {
            self.0 += key_len(tag) + encoded_len_varint(value);
        }
    }

    fn bytes(&mut self, tag: u32, value: &[u8], always: bool) {
        if always || !value.is_empty() {
            self.0 += delimited_len(tag, value.len());
        }
    }

    fn pair(&mut self, tag: u32, first: &[u8], second: &[u8]) {
        self.0 += delimited_len(tag, pair_len(first, second));
    }

    fn message(&mut self, tag: u32, message: &WireMessage) {
        self.0 += delimited_len(tag, message.len);
    }
}

struct Writer<'a, B>(&'a mut B);

impl<B: BufMut> FieldWriter for Writer<'_, B> {
    fn varint(&mut self, tag: u32, value: u64, always: bool) {
        if always || value != 0 {
            encode_key(tag, WireType::Varint, self.0);
            encode_varint(value, self.0);
        }
    }

    fn bytes(&mut self, tag: u32, value: &[u8], always: bool) {
        if always || !value.is_empty() {
            encode_key(tag, WireType::LengthDelimited, self.0);
            encode_varint(value.len() as u64, self.0);
            self.0.put_slice(value);
        }
    }

    fn pair(&mut self, tag: u32, first: &[u8], second: &[u8]) {
        encode_key(tag, WireType::LengthDelimited, self.0);
        encode_varint(pair_len(first, second) as u64, self.0);
        self.bytes(forwarded::PAIR_FIRST, first, false);
        self.bytes(forwarded::PAIR_SECOND, second, false);
    }

    fn message(&mut self, tag: u32, message: &WireMessage) {
        encode_key(tag, WireType::LengthDelimited, self.0);
        encode_varint(message.len as u64, self.0);
        message.fields(self);
    }
}

/// The length of a length-delimited field holding `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// The encoded length of a two-string message (empty strings are left out).
fn pair_len(first: &[u8], second: &[u8]) -> usize {
    Length::of(|len| {
        len.bytes(forwarded::PAIR_FIRST, first, false);
        len.bytes(forwarded::PAIR_SECOND, second, false);
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use mqtt_codec::QoS;
    use prost::Message as _;

    use super::*;
    use crate::message::MessageProperties;

    fn message(properties: MessageProperties, qos: QoS, retain: bool) -> Arc<Message> {
        Arc::new(Message {
            topic: "sensors/1/temp".into(),
            payload: Bytes::from_static(b"21.5"),
            qos,
            retain,
            properties,
            publisher: "pub-1".into(),
            received_at: Instant::now() - Duration::from_millis(3),
            remote: false,
            trace: None,
        })
    }

    fn every_property() -> MessageProperties {
        MessageProperties {
            payload_format_indicator: Some(0),
            expires_at: Some(Instant::now() + Duration::from_secs(30)),
            content_type: Some("text/plain".into()),
            response_topic: Some("reply/1".into()),
            correlation_data: Some(Bytes::new()),
            user_properties: vec![
                ("traceparent".into(), "00-ab-cd-01".into()),
                ("".into(), "empty key".into()),
            ],
        }
    }

    /// A message to forward: the message, its shared groups, traceparent and number.
    type Case = (Arc<Message>, Vec<SharedKey>, Option<String>, u64);

    /// The request as prost would encode it, built the way the sender used to.
    fn reference(batch: &[Case], clock: Clock) -> pb::ForwardRequest {
        pb::ForwardRequest {
            from_node: 2,
            epoch: 77,
            stream_id: 0xdead_beef,
            messages: batch
                .iter()
                .map(|(message, shared, traceparent, seq)| {
                    let mut m = convert::to_proto(message, shared, clock);
                    m.traceparent = traceparent.clone();
                    m.seq = *seq;
                    m
                })
                .collect(),
        }
    }

    #[test]
    fn batches_are_byte_for_byte_what_prost_writes() {
        let clock = Clock::now();
        let groups = vec![SharedKey {
            group: "g".into(),
            filter: "sensors/+/temp".into(),
        }];
        let cases = vec![
            (
                message(every_property(), QoS::ExactlyOnce, true),
                groups,
                Some("00-1-2-01".to_string()),
                1,
            ),
            // Every default: QoS 0, no retain, no properties, not numbered.
            (
                message(MessageProperties::default(), QoS::AtMostOnce, false),
                vec![],
                None,
                0,
            ),
            (
                message(MessageProperties::default(), QoS::AtLeastOnce, false),
                vec![],
                None,
                300,
            ),
        ];
        let expected = reference(&cases, clock).encode_to_vec();
        let batch = ForwardBatch::new(
            2,
            77,
            0xdead_beef,
            cases
                .into_iter()
                .map(|(message, shared, traceparent, seq)| {
                    WireMessage::new(message, shared, traceparent, seq, clock)
                })
                .collect(),
        );
        assert_eq!(batch.encoded_len(), expected.len());
        assert_eq!(batch.encode_to_vec(), expected);
    }

    #[test]
    fn the_receiver_reads_every_field_back() {
        let clock = Clock::now();
        let sent = message(every_property(), QoS::AtLeastOnce, true);
        let batch = ForwardBatch::new(
            1,
            2,
            3,
            vec![WireMessage::new(
                sent.clone(),
                vec![],
                Some("tp".into()),
                9,
                clock,
            )],
        );
        let request = pb::ForwardRequest::decode(batch.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            (request.from_node, request.epoch, request.stream_id),
            (1, 2, 3)
        );
        let [m] = <[_; 1]>::try_from(request.messages).unwrap();
        assert_eq!((m.seq, m.traceparent.as_deref()), (9, Some("tp")));
        let (back, shared) = convert::from_proto(m, clock).unwrap();
        assert!(shared.is_empty());
        assert_eq!(back.topic, sent.topic);
        assert_eq!(back.payload, sent.payload);
        assert_eq!((back.qos, back.retain), (QoS::AtLeastOnce, true));
        assert_eq!(
            back.properties.user_properties,
            sent.properties.user_properties
        );
        assert_eq!(back.properties.correlation_data, Some(Bytes::new()));
        assert_eq!(back.properties.payload_format_indicator, Some(0));
        let age = back.received_at.elapsed();
        assert!(
            age >= Duration::from_millis(3) && age < Duration::from_secs(5),
            "{age:?}"
        );
    }

    #[test]
    fn an_empty_batch_encodes_its_header_only() {
        let batch = ForwardBatch::new(5, 6, 7, vec![]);
        let expected = pb::ForwardRequest {
            from_node: 5,
            epoch: 6,
            messages: vec![],
            stream_id: 7,
        };
        assert_eq!(batch.encode_to_vec(), expected.encode_to_vec());
    }
}
