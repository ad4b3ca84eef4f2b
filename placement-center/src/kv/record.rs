//! The data column family's layout and the compact binary records stored in it.
//!
//! Every state-machine key starts with a one-byte tag, so one column family holds user
//! keys, leases and counters, and a snapshot is a plain dump of that column family:
//!
//! | key | value |
//! |---|---|
//! | `k` + user key | [`KvRecord`]: create, mod revision, version, lease (4 × i64 BE) + value |
//! | `l` + lease id (i64 BE) | TTL in seconds (i64 BE) |
//! | `a` + lease id (i64 BE) + user key | empty: the key is attached to the lease |
//! | `r` | the store revision (i64 BE) |
//! | `n` | the next lease id (i64 BE) |

use crate::error::{Error, Result};
use crate::kv::command::KeyValue;

pub const KEY_TAG: u8 = b'k';
pub const LEASE_TAG: u8 = b'l';
pub const ATTACH_TAG: u8 = b'a';
pub const REVISION_KEY: &[u8] = b"r";
pub const NEXT_LEASE_KEY: &[u8] = b"n";

const HEADER: usize = 32;

/// A user key's state, stored under `k` + key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRecord {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value: Vec<u8>,
}

impl KvRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.value.len());
        for n in [
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease,
        ] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&self.value);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER {
            return Err(Error::Corrupt(format!(
                "key record of {} bytes",
                bytes.len()
            )));
        }
        Ok(KvRecord {
            create_revision: read_i64(&bytes[0..8])?,
            mod_revision: read_i64(&bytes[8..16])?,
            version: read_i64(&bytes[16..24])?,
            lease: read_i64(&bytes[24..32])?,
            value: bytes[HEADER..].to_vec(),
        })
    }

    /// Only the revisions (for `keys_only` reads, without copying the value).
    pub fn into_kv(self, key: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// Big-endian i64 from exactly 8 bytes.
pub fn read_i64(bytes: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("integer of {} bytes", bytes.len())))?;
    Ok(i64::from_be_bytes(arr))
}

/// `k` + user key.
pub fn key_of(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + user_key.len());
    k.push(KEY_TAG);
    k.extend_from_slice(user_key);
    k
}

/// `l` + id.
pub fn lease_key(id: i64) -> Vec<u8> {
    let mut k = vec![LEASE_TAG];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `a` + id + user key; with an empty user key, the prefix of all keys of the lease.
pub fn attach_key(id: i64, user_key: &[u8]) -> Vec<u8> {
    let mut k = vec![ATTACH_TAG];
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(user_key);
    k
}

/// The smallest key greater than every key starting with `prefix` (none if all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = KvRecord {
            create_revision: 1,
            mod_revision: 9,
            version: 3,
            lease: 77,
            value: b"v".to_vec(),
        };
        assert_eq!(KvRecord::decode(&r.encode()).unwrap(), r);
        assert!(KvRecord::decode(b"short").is_err());
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
