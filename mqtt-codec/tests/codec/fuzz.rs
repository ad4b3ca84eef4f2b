//! A small deterministic fuzz run: random bytes and mutations of valid packets must
//! never panic, and whatever decodes must re-encode to something that decodes the same.

use bytes::BytesMut;
use mqtt_codec::*;

use crate::gen::Rng;
use crate::samples::{samples, VERSIONS};

/// Decodes everything in `bytes`; checks the re-encoding property for each packet.
fn decode_all(bytes: &[u8], mut version: Option<ProtocolVersion>) {
    let mut buf = BytesMut::from(bytes);
    let _ = check(&buf, 1 << 16);
    loop {
        match decode(&mut buf, version, MAX_PACKET_SIZE) {
            Ok(Some(packet)) => {
                let v = match &packet {
                    Packet::Connect(c) => c.protocol,
                    _ => version.expect("only CONNECT decodes before a version is known"),
                };
                let mut out = BytesMut::new();
                encode(&packet, v, &mut out).unwrap_or_else(|e| panic!("{e}: {packet:?}"));
                assert_eq!(out.len(), encoded_len(&packet, v));
                let again = decode(&mut out, version, MAX_PACKET_SIZE)
                    .unwrap_or_else(|e| panic!("{e}: {packet:?}"));
                assert_eq!(again.as_ref(), Some(&packet));
                version.get_or_insert(v);
            }
            Ok(None) | Err(_) => return,
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(42);
    for i in 0..4000 {
        let mut bytes = rng.bytes(48).to_vec();
        // Give most inputs a plausible header so the body parsers get exercised.
        if bytes.len() >= 2 && i % 4 != 0 {
            bytes[1] = (bytes.len() - 2).min(127) as u8;
        }
        for version in [
            None,
            Some(ProtocolVersion::V3_1),
            Some(ProtocolVersion::V3_1_1),
            Some(ProtocolVersion::V5),
        ] {
            decode_all(&bytes, version);
        }
    }
}

#[test]
fn mutated_packets_never_panic() {
    let mut rng = Rng::new(7);
    let mut corpus = Vec::new();
    for version in VERSIONS {
        for packet in samples(version) {
            let mut buf = BytesMut::new();
            encode(&packet, version, &mut buf).unwrap();
            let decode_with = if matches!(packet, Packet::Connect(_)) {
                None
            } else {
                Some(version)
            };
            corpus.push((buf.to_vec(), decode_with));
        }
        for _ in 0..50 {
            let packet = rng.packet(version);
            let mut buf = BytesMut::new();
            encode(&packet, version, &mut buf).unwrap();
            let decode_with = if matches!(packet, Packet::Connect(_)) {
                None
            } else {
                Some(version)
            };
            corpus.push((buf.to_vec(), decode_with));
        }
    }
    for _ in 0..6000 {
        let (original, version) = &corpus[rng.below(corpus.len())];
        let mut bytes = original.clone();
        for _ in 0..1 + rng.below(3) {
            match rng.below(4) {
                // Flip a byte (never the fixed header's length, to keep frames whole).
                0 | 1 if bytes.len() > 2 => {
                    let at = 2 + rng.below(bytes.len() - 2);
                    bytes[at] = rng.next() as u8;
                }
                // Flip the first byte: type and flags.
                2 => bytes[0] = rng.next() as u8,
                // Truncate or extend, fixing up a one-byte remaining length if there is one.
                _ => {
                    let new_len = rng.below(bytes.len() + 4);
                    bytes.resize(new_len.max(2), rng.next() as u8);
                    if bytes[1] < 0x80 {
                        bytes[1] = (bytes.len() - 2).min(127) as u8;
                    }
                }
            }
        }
        decode_all(&bytes, *version);
    }
}
