//! Writing property blocks: a properties struct lists its present properties once
//! through [`PropertySet::visit`]; the same walk measures and writes them.

use bytes::{BufMut, BytesMut};
use bytestring::ByteString;

use super::id;
use crate::write::{binary_len, put_binary, put_varint, varint_len};
use crate::EncodeError;

/// One property value to write, borrowed from a properties struct.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Byte(u8),
    U16(u16),
    U32(u32),
    Varint(u32),
    Str(&'a str),
    Bin(&'a [u8]),
    Pair(&'a str, &'a str),
}

impl Value<'_> {
    /// Encoded size of the value (identifier not included).
    fn len(self) -> usize {
        match self {
            Self::Byte(_) => 1,
            Self::U16(_) => 2,
            Self::U32(_) => 4,
            Self::Varint(v) => varint_len(v as usize),
            Self::Str(s) => binary_len(s.as_bytes()),
            Self::Bin(b) => binary_len(b),
            Self::Pair(k, v) => binary_len(k.as_bytes()) + binary_len(v.as_bytes()),
        }
    }

    fn write(self, pid: u8, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u8(pid);
        match self {
            Self::Byte(v) => buf.put_u8(v),
            Self::U16(v) => buf.put_u16(v),
            Self::U32(v) => buf.put_u32(v),
            Self::Varint(v) => put_varint(buf, v as usize)?,
            Self::Str(s) => put_binary(buf, s.as_bytes())?,
            Self::Bin(b) => put_binary(buf, b)?,
            Self::Pair(k, v) => {
                put_binary(buf, k.as_bytes())?;
                put_binary(buf, v.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// A properties struct that can list its present properties for writing.
pub(crate) trait PropertySet {
    /// Calls `f` once per present property, user properties in order.
    fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>;
}

/// Helper for [`PropertySet::visit`] implementations: visits `value` if present.
pub(crate) fn opt<'a, T, F>(
    f: &mut F,
    pid: u8,
    value: &'a Option<T>,
    conv: impl FnOnce(&'a T) -> Value<'a>,
) -> Result<(), EncodeError>
where
    F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
{
    match value {
        Some(v) => f(pid, conv(v)),
        None => Ok(()),
    }
}

/// Helper for [`PropertySet::visit`] implementations: visits every user property.
pub(crate) fn user<F>(f: &mut F, props: &[(ByteString, ByteString)]) -> Result<(), EncodeError>
where
    F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
{
    props
        .iter()
        .try_for_each(|(k, v)| f(id::USER_PROPERTY, Value::Pair(k, v)))
}

/// Size of the properties alone (what Property Length holds).
pub(crate) fn content_len(props: &impl PropertySet) -> usize {
    let mut len = 0;
    // The length walk never fails.
    let _ = props.visit(&mut |_, v| {
        len += 1 + v.len();
        Ok(())
    });
    len
}

/// Size of the whole block: Property Length plus the properties.
pub(crate) fn block_len(props: &impl PropertySet) -> usize {
    let len = content_len(props);
    varint_len(len) + len
}

/// Writes the whole block: Property Length plus the properties.
pub(crate) fn write(props: &impl PropertySet, buf: &mut BytesMut) -> Result<(), EncodeError> {
    put_varint(buf, content_len(props))?;
    props.visit(&mut |pid, v| v.write(pid, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sample;
    impl PropertySet for Sample {
        fn visit<F>(&self, f: &mut F) -> Result<(), EncodeError>
        where
            F: FnMut(u8, Value<'_>) -> Result<(), EncodeError>,
        {
            opt(f, id::TOPIC_ALIAS, &Some(5u16), |v| Value::U16(*v))?;
            opt(f, id::CONTENT_TYPE, &None::<ByteString>, |v| Value::Str(v))?;
            f(id::SUBSCRIPTION_IDENTIFIER, Value::Varint(200))?;
            user(f, &[("a".into(), "b".into())])
        }
    }

    #[test]
    fn writes_what_it_measures() {
        let mut buf = BytesMut::new();
        write(&Sample, &mut buf).unwrap();
        assert_eq!(buf.len(), block_len(&Sample));
        assert_eq!(
            &buf[..],
            b"\x0D\x23\x00\x05\x0B\xC8\x01\x26\x00\x01a\x00\x01b"
        );
    }
}
