//! The snapshot format: a dump of the data column family as length-prefixed key/value
//! pairs, and the file that keeps this node's latest snapshot (meta + data).

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::raft::SnapshotMeta;

/// Appends one key/value pair.
pub fn write_pair(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// Splits a dump back into pairs.
pub fn read_pairs(mut data: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (key, rest) = take(data)?;
        let (value, rest) = take(rest)?;
        out.push((key, value));
        data = rest;
    }
    Ok(out)
}

fn take(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || Error::Corrupt("truncated snapshot".into());
    let len = u32::from_be_bytes(
        data.get(..4)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    ) as usize;
    let body = data.get(4..4 + len).ok_or_else(corrupt)?;
    Ok((body, &data[4 + len..]))
}

/// Saves a snapshot atomically (write to a temporary file, fsync, rename).
pub fn save(path: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<()> {
    let meta = serde_json::to_vec(meta).map_err(|e| Error::Corrupt(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&(meta.len() as u32).to_be_bytes())?;
        f.write_all(&meta)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Loads the saved snapshot, if any.
pub fn load(path: &Path) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (meta, data) = take(&bytes)?;
    let meta =
        serde_json::from_slice(meta).map_err(|e| Error::Corrupt(format!("snapshot meta: {e}")))?;
    Ok(Some((meta, data.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_truncation_is_detected() {
        let mut buf = Vec::new();
        write_pair(&mut buf, b"k1", b"v1");
        write_pair(&mut buf, b"", b"");
        let pairs = read_pairs(&buf).unwrap();
        assert_eq!(pairs, vec![(&b"k1"[..], &b"v1"[..]), (&b""[..], &b""[..])]);
        assert!(read_pairs(&buf[..buf.len() - 1]).is_err());
    }
}
