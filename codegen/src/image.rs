//! Map images: binary files holding exactly the entries of one map in the kernel's layout, so a
//! loader can fill maps without recomputing policy. Format (version 2, little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `CPMAPIMG` |
//! | 8 | 2 | format version (2) |
//! | 10 | 2 | kind: 1 policy (`cp_policy`), 2 ipcache prefixes (`cp_ipcache`), 3 address classes (`cp_addr`), 4 ipcache hosts (`cp_ipcache_host`), 5 policy port ranges (`cp_policy_rng`) |
//! | 12 | 4 | key size in bytes |
//! | 16 | 4 | value size in bytes |
//! | 20 | 4 | entry count |
//! | 24 | 4 | flags (0) |
//! | 28 | 8 | checksum: first 8 bytes of SHA-256 over the entries, as a little-endian u64 |
//! | 36 | count × (key + value) | entries, each key then value, sorted by key bytes |
//!
//! A [`MapImage`] keeps the entries as one flat byte buffer in exactly that form, so building
//! and writing an image allocates once.

use crate::layout::{
    AddrKey, AddrValue, IpcacheHostKey, IpcacheKey, IpcacheValue, PolicyKey, PolicyRangeKey,
    PolicyValue,
};
use crate::maps::{self, MapDef};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"CPMAPIMG";
pub const VERSION: u16 = 2;
pub const HEADER_LEN: usize = 36;

/// Which map an image fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ImageKind {
    Policy,
    Ipcache,
    Addr,
    IpcacheHost,
    PolicyRanges,
}

impl ImageKind {
    const ALL: [ImageKind; 5] = [
        ImageKind::Policy,
        ImageKind::Ipcache,
        ImageKind::Addr,
        ImageKind::IpcacheHost,
        ImageKind::PolicyRanges,
    ];
    pub fn code(self) -> u16 {
        match self {
            ImageKind::Policy => 1,
            ImageKind::Ipcache => 2,
            ImageKind::Addr => 3,
            ImageKind::IpcacheHost => 4,
            ImageKind::PolicyRanges => 5,
        }
    }
    pub fn from_code(c: u16) -> Option<ImageKind> {
        Self::ALL.into_iter().find(|k| k.code() == c)
    }
    /// The map this image fills.
    pub fn map(self) -> &'static MapDef {
        match self {
            ImageKind::Policy => &maps::POLICY,
            ImageKind::Ipcache => &maps::IPCACHE,
            ImageKind::Addr => &maps::ADDR,
            ImageKind::IpcacheHost => &maps::IPCACHE_HOST,
            ImageKind::PolicyRanges => &maps::POLICY_RANGES,
        }
    }
    /// The name of the map this image fills.
    pub fn map_name(self) -> &'static str {
        self.map().name
    }
    /// (key size, value size) of the kernel layout.
    pub fn sizes(self) -> (usize, usize) {
        let m = self.map();
        (m.key.size(), m.value.size())
    }
}

// The typed entries the images are built from have the sizes of the maps they fill.
const _: () = {
    assert!(maps::POLICY.key.size() == size_of::<PolicyKey>());
    assert!(maps::POLICY.value.size() == size_of::<PolicyValue>());
    assert!(maps::POLICY_RANGES.key.size() == size_of::<PolicyRangeKey>());
    assert!(maps::POLICY_RANGES.value.size() == size_of::<PolicyValue>());
    assert!(maps::IPCACHE.key.size() == size_of::<IpcacheKey>());
    assert!(maps::IPCACHE.value.size() == size_of::<IpcacheValue>());
    assert!(maps::IPCACHE_HOST.key.size() == size_of::<IpcacheHostKey>());
    assert!(maps::IPCACHE_HOST.value.size() == size_of::<IpcacheValue>());
    assert!(maps::ADDR.key.size() == size_of::<AddrKey>());
    assert!(maps::ADDR.value.size() == size_of::<AddrValue>());
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("not a map image (bad magic)")]
    BadMagic,
    #[error("map image format version {0} is not supported (this build reads version {VERSION})")]
    Version(u16),
    #[error("unknown map image kind {0}")]
    Kind(u16),
    #[error("map image truncated: {0}")]
    Truncated(&'static str),
    #[error("map image for {kind:?} has key/value sizes {key}/{value}, the kernel layout has {want_key}/{want_value}")]
    Sizes {
        kind: ImageKind,
        key: usize,
        value: usize,
        want_key: usize,
        want_value: usize,
    },
    #[error("map image checksum mismatch (file corrupted)")]
    Checksum,
    #[error("map image has {0} trailing bytes")]
    Trailing(usize),
}

/// One map's entries, key and value bytes in the kernel layout, sorted by key bytes, stored
/// back to back (the image file's payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapImage {
    pub kind: ImageKind,
    payload: Vec<u8>,
}

fn checksum(payload: &[u8]) -> u64 {
    let d = Sha256::digest(payload);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

impl MapImage {
    /// An image from typed entries (sorted by key bytes for a deterministic file).
    pub fn new<'a, K: 'a, V: 'a>(
        kind: ImageKind,
        entries: impl IntoIterator<Item = (&'a K, &'a V)>,
        kb: fn(&K) -> &[u8],
        vb: fn(&V) -> &[u8],
    ) -> Self {
        let mut refs: Vec<(&[u8], &[u8])> =
            entries.into_iter().map(|(k, v)| (kb(k), vb(v))).collect();
        refs.sort_unstable();
        Self::from_sorted(kind, refs)
    }

    /// An image from entries already sorted by key bytes (not checked in release builds).
    pub fn from_sorted<'a>(
        kind: ImageKind,
        entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Self {
        let entries = entries.into_iter();
        let (ks, vs) = kind.sizes();
        let mut payload = Vec::with_capacity(entries.size_hint().0 * (ks + vs));
        for (k, v) in entries {
            debug_assert_eq!((k.len(), v.len()), (ks, vs));
            payload.extend_from_slice(k);
            payload.extend_from_slice(v);
        }
        let img = MapImage { kind, payload };
        debug_assert!(img
            .entries()
            .zip(img.entries().skip(1))
            .all(|(a, b)| a.0 < b.0));
        img
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        let (ks, vs) = self.kind.sizes();
        self.payload.len() / (ks + vs)
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Every (key, value), in key order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        let (ks, vs) = self.kind.sizes();
        self.payload
            .chunks_exact(ks + vs)
            .map(move |c| c.split_at(ks))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let (ks, vs) = self.kind.sizes();
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.kind.code().to_le_bytes());
        out.extend_from_slice(&(ks as u32).to_le_bytes());
        out.extend_from_slice(&(vs as u32).to_le_bytes());
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&checksum(&self.payload).to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<MapImage, ImageError> {
        if b.len() < HEADER_LEN {
            return Err(if b.len() >= 8 && &b[..8] != MAGIC {
                ImageError::BadMagic
            } else {
                ImageError::Truncated("header")
            });
        }
        if &b[..8] != MAGIC {
            return Err(ImageError::BadMagic);
        }
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
        let version = u16_at(8);
        if version != VERSION {
            return Err(ImageError::Version(version));
        }
        let kind = ImageKind::from_code(u16_at(10)).ok_or(ImageError::Kind(u16_at(10)))?;
        let (key, value, count) = (u32_at(12), u32_at(16), u32_at(20));
        let (want_key, want_value) = kind.sizes();
        if (key, value) != (want_key, want_value) {
            return Err(ImageError::Sizes {
                kind,
                key,
                value,
                want_key,
                want_value,
            });
        }
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&b[28..36]);
        let payload = &b[HEADER_LEN..];
        let need = count
            .checked_mul(key + value)
            .ok_or(ImageError::Truncated("entries"))?;
        if payload.len() < need {
            return Err(ImageError::Truncated("entries"));
        }
        if payload.len() > need {
            return Err(ImageError::Trailing(payload.len() - need));
        }
        if checksum(payload) != u64::from_le_bytes(sum) {
            return Err(ImageError::Checksum);
        }
        Ok(MapImage {
            kind,
            payload: payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MapImage {
        let k = PolicyKey {
            identity: 256,
            dir_flags: 0,
            protocol: 6,
            dport_be: 80u16.to_be(),
        };
        let v = PolicyValue {
            verdict: 1,
            rule_id: 3,
            ..Default::default()
        };
        MapImage::new(
            ImageKind::Policy,
            [(&k, &v)],
            PolicyKey::as_bytes,
            PolicyValue::as_bytes,
        )
    }

    #[test]
    fn round_trips() {
        let img = sample();
        let bytes = img.to_bytes();
        assert_eq!(&bytes[..8], b"CPMAPIMG");
        assert_eq!(bytes.len(), HEADER_LEN + 8 + 24);
        assert_eq!(MapImage::from_bytes(&bytes), Ok(img));
    }

    #[test]
    fn rejects_corruption() {
        let mut bytes = sample().to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(MapImage::from_bytes(&bytes), Err(ImageError::Checksum));
        let bytes = sample().to_bytes();
        assert_eq!(
            MapImage::from_bytes(&bytes[..bytes.len() - 1]),
            Err(ImageError::Truncated("entries"))
        );
        let mut v1 = sample().to_bytes();
        v1[8] = 1;
        assert_eq!(MapImage::from_bytes(&v1), Err(ImageError::Version(1)));
        assert_eq!(
            MapImage::from_bytes(b"ELF\0garbagegarbagegarbagegarbagegarbage"),
            Err(ImageError::BadMagic)
        );
    }
}
