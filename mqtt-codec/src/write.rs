//! Writing the MQTT data representations (MQTT 5 §1.5) and computing their sizes.
//!
//! Every `put_*` has a matching `*_len` so that [`encoded_len`](crate::encoded_len)
//! and [`encode`](crate::encode) can never disagree.

use bytes::{BufMut, BytesMut};

use crate::EncodeError;

/// The largest value a Variable Byte Integer can hold (and so the largest remaining length).
pub(crate) const MAX_VARINT: usize = 268_435_455;

/// The encoded size of a Variable Byte Integer holding `value` (5 for values too large to
/// encode, so that sizes stay monotonic; `encode` rejects those).
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=MAX_VARINT => 4,
        _ => 5,
    }
}

/// Writes a Variable Byte Integer; `value` must be at most [`MAX_VARINT`].
pub(crate) fn put_varint(buf: &mut BytesMut, value: usize) -> Result<(), EncodeError> {
    if value > MAX_VARINT {
        return Err(EncodeError::InvalidPacket(
            "variable byte integer over 268,435,455",
        ));
    }
    let mut value = value;
    loop {
        // Truncation is the point: the low seven bits go out first.
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return Ok(());
        }
    }
}

/// The size of Binary Data or a UTF-8 Encoded String: two length bytes plus the content.
pub(crate) fn binary_len(bytes: &[u8]) -> usize {
    2 + bytes.len()
}

/// Writes Binary Data (also used for strings): a two-byte length, then the bytes.
pub(crate) fn put_binary(buf: &mut BytesMut, bytes: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(bytes.len()).map_err(|_| {
        EncodeError::InvalidPacket("string or binary data longer than 65,535 bytes")
    })?;
    buf.put_u16(len);
    buf.put_slice(bytes);
    Ok(())
}

/// Writes a UTF-8 Encoded String (already valid: it comes from a `str`).
pub(crate) fn put_string(buf: &mut BytesMut, s: &str) -> Result<(), EncodeError> {
    put_binary(buf, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::parse_varint;

    #[test]
    fn varints_round_trip_and_sizes_agree() {
        for value in [
            0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_VARINT,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value).unwrap();
            assert_eq!(buf.len(), varint_len(value), "{value}");
            assert_eq!(parse_varint(&buf), Ok(Some((value as u32, buf.len()))));
        }
        assert!(put_varint(&mut BytesMut::new(), MAX_VARINT + 1).is_err());
        assert_eq!(varint_len(MAX_VARINT + 1), 5);
    }

    #[test]
    fn binary_is_length_prefixed_and_bounded() {
        let mut buf = BytesMut::new();
        put_string(&mut buf, "MQTT").unwrap();
        assert_eq!(&buf[..], b"\x00\x04MQTT");
        assert_eq!(binary_len(b"MQTT"), 6);
        let long = vec![b'a'; 65_536];
        let mut buf = BytesMut::new();
        assert!(put_binary(&mut buf, &long).is_err());
        assert!(buf.is_empty());
        assert!(put_binary(&mut buf, &long[1..]).is_ok());
    }
}
