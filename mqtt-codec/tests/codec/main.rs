//! Integration tests of the codec's public API, in one binary: round trips, known byte
//! vectors, malformed input, framing and a deterministic fuzz run.

mod framing;
mod fuzz;
mod gen;
mod malformed;
mod roundtrip;
mod samples;
mod vectors;

use bytes::BytesMut;
use mqtt_codec::{
    decode, encode, encoded_len, DecodeError, Packet, ProtocolVersion, MAX_PACKET_SIZE,
};

/// The version to decode `packet` with: CONNECT is decoded before a version is known.
pub fn decode_version(packet: &Packet, version: ProtocolVersion) -> Option<ProtocolVersion> {
    match packet {
        Packet::Connect(_) => None,
        _ => Some(version),
    }
}

/// Encodes `packet`, checking that `encoded_len` predicted the size.
pub fn encode_checked(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).unwrap_or_else(|e| panic!("{e}: {packet:?}"));
    assert_eq!(buf.len(), encoded_len(packet, version), "{packet:?}");
    buf
}

/// Decodes exactly one whole packet from `bytes`.
pub fn decode_one(bytes: &[u8], version: Option<ProtocolVersion>) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, version, MAX_PACKET_SIZE)?.expect("a whole packet");
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(packet)
}

/// Hex for readable byte vectors: "10 0c 00" → bytes (spaces ignored).
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}
