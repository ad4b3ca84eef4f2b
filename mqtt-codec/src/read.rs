//! Reading the MQTT data representations (MQTT 5 §1.5, 3.1.1 §1.5) out of one frame.
//!
//! [`Reader`] is a cursor over a frozen frame; strings and binary data come out as
//! slices of it ([`ByteString`]/[`Bytes`] sharing the frame's allocation), so decoding
//! copies nothing. Running past the end is always a Malformed Packet.

use bytes::Bytes;
use bytestring::ByteString;

use crate::DecodeError;

const TRUNCATED: DecodeError = DecodeError::MalformedPacket("packet ends early");

/// Parses a Variable Byte Integer from the front of `buf`.
///
/// Returns `Ok(None)` if `buf` ends before the integer does, else the value and the
/// number of bytes it took. More than four bytes, or a non-minimal encoding, is
/// malformed: MQTT 5 requires the minimum number of bytes [MQTT-1.5.5-1], and 3.1.1
/// defines the one encoding algorithm whose output is always minimal, so the rule is
/// applied to every version (remaining length included).
pub(crate) fn parse_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value = 0u32;
    for (i, &byte) in buf.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(DecodeError::MalformedPacket(
                    "variable byte integer not minimally encoded",
                ));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::MalformedPacket(
            "variable byte integer longer than 4 bytes",
        ))
    } else {
        Ok(None)
    }
}

/// Checks a UTF-8 Encoded String's bytes and wraps them without copying: well-formed
/// UTF-8 (which excludes the surrogates U+D800..U+DFFF) and no U+0000. The "SHOULD NOT"
/// code points (controls, non-characters) are accepted, as the spec allows.
pub(crate) fn utf8(bytes: Bytes) -> Result<ByteString, DecodeError> {
    if bytes.contains(&0) {
        return Err(DecodeError::InvalidUtf8);
    }
    ByteString::try_from(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

/// A cursor over one packet body (or one property block inside it).
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    /// A reader over `buf`, starting at its first byte.
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when everything has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless everything has been read: trailing bytes make a packet malformed.
    pub(crate) fn expect_end(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::MalformedPacket(
                "unexpected bytes after the packet's content",
            ))
        }
    }

    fn take_slice(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.remaining() < n {
            return Err(TRUNCATED);
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    /// The next `n` bytes as a slice of the frame.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(TRUNCATED);
        }
        let start = self.pos;
        self.pos += n;
        Ok(self.buf.slice(start..self.pos))
    }

    /// A reader over the next `n` bytes (a property block), skipping them here.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader, DecodeError> {
        self.take(n).map(Reader::new)
    }

    /// Everything not read yet (a PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.pos;
        self.pos = self.buf.len();
        self.buf.slice(start..)
    }

    /// A Byte.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take_slice(1)?[0])
    }

    /// A Two Byte Integer (big-endian).
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take_slice(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A Four Byte Integer (big-endian).
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take_slice(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A Variable Byte Integer (see [`parse_varint`]).
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        let (value, len) = parse_varint(&self.buf[self.pos..])?.ok_or(TRUNCATED)?;
        self.pos += len;
        Ok(value)
    }

    /// Binary Data: a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String, validated by [`utf8`].
    pub(crate) fn string(&mut self) -> Result<ByteString, DecodeError> {
        let bytes = self.binary()?;
        utf8(bytes)
    }

    /// A non-zero Packet Identifier ([MQTT-2.2.1-3]/[MQTT-2.3.1-1]); 0 is a protocol error.
    pub(crate) fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ProtocolError("packet identifier 0")),
            id => Ok(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> Reader {
        Reader::new(Bytes::from_static(bytes))
    }

    #[test]
    fn varints_decode_at_every_length_boundary() {
        let cases: [(&[u8], u32); 8] = [
            (&[0x00], 0),
            (&[0x7F], 127),
            (&[0x80, 0x01], 128),
            (&[0xFF, 0x7F], 16_383),
            (&[0x80, 0x80, 0x01], 16_384),
            (&[0xFF, 0xFF, 0x7F], 2_097_151),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
            (&[0xFF, 0xFF, 0xFF, 0x7F], 268_435_455),
        ];
        for (bytes, value) in cases {
            assert_eq!(parse_varint(bytes), Ok(Some((value, bytes.len()))));
        }
    }

    #[test]
    fn varint_edge_cases() {
        assert_eq!(parse_varint(&[]), Ok(None));
        assert_eq!(parse_varint(&[0x80, 0x80, 0x80]), Ok(None));
        assert!(matches!(
            parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Err(DecodeError::MalformedPacket(_))
        ));
        // 0 encoded in two bytes, 127 in three: not minimal.
        assert!(parse_varint(&[0x80, 0x00]).is_err());
        assert!(parse_varint(&[0xFF, 0x80, 0x00]).is_err());
    }

    #[test]
    fn integers_are_big_endian() {
        let mut r = reader(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
        assert_eq!(r.u8(), Ok(0x01));
        assert_eq!(r.u16(), Ok(0x0203));
        assert_eq!(r.u32(), Ok(0x0405_0607));
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(TRUNCATED));
    }

    #[test]
    fn strings_are_validated() {
        assert_eq!(reader(&[0, 2, b'h', b'i']).string().unwrap(), "hi");
        assert_eq!(reader(&[0, 0]).string().unwrap(), "");
        // U+FEFF must be kept, not stripped [MQTT-1.5.4-3].
        assert_eq!(
            reader(&[0, 3, 0xEF, 0xBB, 0xBF]).string().unwrap(),
            "\u{FEFF}"
        );
        // A control character is a SHOULD NOT for senders: accepted.
        assert_eq!(reader(&[0, 1, 0x01]).string().unwrap(), "\u{1}");
        assert_eq!(
            reader(&[0, 1, 0x00]).string(),
            Err(DecodeError::InvalidUtf8)
        );
        // An encoded surrogate (U+D800) and a lone continuation byte.
        assert_eq!(
            reader(&[0, 3, 0xED, 0xA0, 0x80]).string(),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            reader(&[0, 1, 0x80]).string(),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(reader(&[0, 5, b'a']).string(), Err(TRUNCATED));
        assert_eq!(reader(&[0]).string(), Err(TRUNCATED));
    }

    #[test]
    fn slices_share_the_frame() {
        let frame = Bytes::from_static(b"\x00\x03abcrest");
        let mut r = Reader::new(frame.clone());
        let s = r.string().unwrap();
        assert_eq!(s.as_bytes().as_ptr(), frame[2..].as_ptr());
        assert_eq!(r.rest(), "rest");
        assert!(r.expect_end().is_ok());
    }

    #[test]
    fn packet_id_zero_is_a_protocol_error() {
        assert!(matches!(
            reader(&[0, 0]).packet_id(),
            Err(DecodeError::ProtocolError(_))
        ));
        assert_eq!(reader(&[0, 7]).packet_id(), Ok(7));
    }
}
