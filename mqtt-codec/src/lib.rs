//! MQTT 3.1, 3.1.1 and 5.0 packet codec.
//!
//! One packet model ([`Packet`]) serves every protocol version; version differences
//! stay inside this crate. Decoding is zero-copy: strings and payloads share the read
//! buffer. [`check`] is a cheap look at the fixed header; [`decode`] parses one whole
//! packet; [`encode`] writes one and [`encoded_len`] predicts its size. [`MqttCodec`]
//! wraps them for `tokio_util::codec::Framed`; [`topic`] validates and matches topics.
//!
//! ```
//! use bytes::BytesMut;
//! use mqtt_codec::{decode, encode, Packet, ProtocolVersion, MAX_PACKET_SIZE};
//!
//! // A CONNECT from an MQTT 3.1.1 client with an empty client id.
//! let mut buf = BytesMut::from(&b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"[..]);
//! let Some(Packet::Connect(connect)) = decode(&mut buf, None, MAX_PACKET_SIZE)? else {
//!     unreachable!()
//! };
//! assert_eq!(connect.protocol, ProtocolVersion::V3_1_1);
//! let mut out = BytesMut::new();
//! encode(&Packet::PingResp, connect.protocol, &mut out)?;
//! assert_eq!(&out[..], b"\xd0\x00");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where the spec leaves room
//! - Variable Byte Integers (remaining length included) must be minimally encoded in
//!   every version; MQTT 5 requires it [MQTT-1.5.5-1] and 3.1.1's algorithm only
//!   produces minimal encodings.
//! - Strings: U+0000 and ill-formed UTF-8 (surrogates included) are rejected; the code
//!   points the spec only says SHOULD NOT be sent (controls, non-characters) are accepted.
//! - A wrong protocol name is [`DecodeError::InvalidProtocolName`] (reason 0x84, v3
//!   return code 0x01); the broker may answer with it or just close [MQTT-3.1.2-1].
//! - Invalid values of a well-formed field (packet id 0, a reason code not allowed in
//!   that packet, Retain Handling 3 or QoS 3 in v5 subscription options, property
//!   values the spec rules out, an empty v5 topic without alias, No Local on a shared
//!   subscription) are Protocol Errors; bytes that cannot be parsed, reserved bits,
//!   properties not allowed in a packet and trailing bytes are Malformed.
//! - Topic filters in SUBSCRIBE/UNSUBSCRIBE are not validated by the decoder (MQTT 5
//!   answers per filter in SUBACK/UNSUBACK); PUBLISH and Will topic names are.
//! - Direction rules (a client must not send a Subscription Identifier in PUBLISH, the
//!   server must not send Session Expiry in DISCONNECT, a second CONNECT) and AUTH's
//!   Authentication Method are left to the broker, which knows who sent what.
//! - MQTT 3.1 leniency: DUP is ignored on PUBREL/SUBSCRIBE/UNSUBSCRIBE, a CONNECT may
//!   flag a user name or password it leaves out, and CONNACK has no Session Present.

mod codec;
mod error;
mod frame;
mod packet;
mod packets;
mod properties;
mod read;
mod reason;
pub mod topic;
mod write;

pub use bytestring::ByteString;
pub use codec::MqttCodec;
pub use error::{CodecError, DecodeError, EncodeError};
pub use frame::{
    check, decode, encode, encode_publish, encoded_len, publish_encoded_len, MAX_PACKET_SIZE,
};
pub use packet::*;
pub use packets::connect_version;
pub use reason::ReasonCode;
