//! Byte-level access to a pinned BPF map (lookup, update, delete, iterate) through the `bpf(2)`
//! syscall, so that map images and deltas, which are bytes in the kernel's layout, can be
//! written without knowing the key and value types.

use crate::error::{LoaderError, Result};
use aya::maps::{MapData, MapType};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

/// A map's entries: key bytes → value bytes.
pub type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_FREEZE: libc::c_long = 22;

/// The `bpf_attr` member used by the element commands.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

pub struct RawMap {
    data: MapData,
    path: PathBuf,
    key_size: u32,
    value_size: u32,
    /// Bytes the kernel copies for one value: `value_size`, or for per-CPU maps one 8-byte
    /// aligned slot per possible CPU.
    value_buf: usize,
    max_entries: u32,
}

/// The length of the value buffer for a map of `map_type` with values of `value_size` bytes.
fn value_buffer_len(map_type: Option<MapType>, value_size: u32) -> std::io::Result<usize> {
    let per_cpu = matches!(
        map_type,
        Some(MapType::PerCpuHash | MapType::PerCpuArray | MapType::LruPerCpuHash)
    );
    if !per_cpu {
        return Ok(value_size as usize);
    }
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
    Ok(per_cpu_stride(value_size) * cpus)
}

/// Bytes from one CPU's value to the next in a per-CPU value buffer: the value size, 8-byte aligned.
fn per_cpu_stride(value_size: u32) -> usize {
    (value_size as usize).div_ceil(8) * 8
}

impl RawMap {
    /// Opens the map pinned at `path`.
    pub fn open_pinned(path: &Path) -> Result<Self> {
        let data = MapData::from_pin(path).map_err(|e| LoaderError::Map {
            path: path.into(),
            message: e.to_string(),
        })?;
        Self::from_map_data(data, path)
    }

    /// Wraps a map aya created or opened; `path` names it in messages.
    pub fn from_map_data(data: MapData, path: &Path) -> Result<Self> {
        let info = data.info().map_err(|e| LoaderError::Map {
            path: path.into(),
            message: e.to_string(),
        })?;
        let value_buf = value_buffer_len(info.map_type().ok(), info.value_size()).map_err(|e| {
            LoaderError::Map {
                path: path.into(),
                message: format!("possible CPUs: {e}"),
            }
        })?;
        Ok(RawMap {
            path: path.into(),
            key_size: info.key_size(),
            value_size: info.value_size(),
            value_buf,
            max_entries: info.max_entries(),
            data,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn key_size(&self) -> u32 {
        self.key_size
    }
    pub fn value_size(&self) -> u32 {
        self.value_size
    }
    /// Length of the values `lookup` returns and `update` takes: the value size, or for
    /// per-CPU maps one 8-byte aligned slot per possible CPU.
    pub fn value_buffer_len(&self) -> usize {
        self.value_buf
    }
    /// Where CPU `cpu`'s value lies in a value buffer of this per-CPU map (as `lookup` returns
    /// it and `update` takes it); for other maps `cpu_value_range(0)` is the whole value.
    pub fn cpu_value_range(&self, cpu: usize) -> std::ops::Range<usize> {
        let start = cpu * per_cpu_stride(self.value_size);
        start..start + self.value_size as usize
    }
    /// Each possible CPU's value in `value` (as `lookup` returns it), in CPU order; the one value
    /// of a map that is not per-CPU.
    pub fn cpu_values<'a>(&'a self, value: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let cpus = self.value_buf.div_ceil(per_cpu_stride(self.value_size));
        (0..cpus).filter_map(move |cpu| value.get(self.cpu_value_range(cpu)))
    }
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }
    pub fn map_data(&self) -> &MapData {
        &self.data
    }

    /// Fails unless the map's key and value sizes are the expected ones (a pinned map left by
    /// an older layout must not be written with the new one).
    pub fn expect_layout(&self, key_size: u32, value_size: u32) -> Result<()> {
        if self.key_size == key_size && self.value_size == value_size {
            return Ok(());
        }
        Err(LoaderError::MapLayout {
            path: self.path.clone(),
            got_key: self.key_size,
            got_value: self.value_size,
            want_key: key_size,
            want_value: value_size,
        })
    }

    /// The value stored under `key`. For per-CPU maps: one 8-byte aligned slot per possible
    /// CPU, concatenated (see [`RawMap::value_buffer_len`]).
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        let mut value = vec![0u8; self.value_buf];
        let mut attr = self.attr(key.as_ptr(), value.as_mut_ptr());
        match self.sys(BPF_MAP_LOOKUP_ELEM, &mut attr, "MAP_LOOKUP_ELEM") {
            Ok(()) => Ok(Some(value)),
            Err(LoaderError::Syscall { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Inserts or replaces one entry (`value` as [`RawMap::lookup`] returns it).
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_key(key)?;
        if value.len() != self.value_buf {
            return Err(self.size_error("value", value.len(), self.value_buf as u32));
        }
        let mut attr = self.attr(key.as_ptr(), value.as_ptr() as *mut u8);
        self.sys(BPF_MAP_UPDATE_ELEM, &mut attr, "MAP_UPDATE_ELEM")
    }

    /// Removes one entry; `false` when it was not there.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let mut attr = self.attr(key.as_ptr(), std::ptr::null_mut());
        match self.sys(BPF_MAP_DELETE_ELEM, &mut attr, "MAP_DELETE_ELEM") {
            Ok(()) => Ok(true),
            Err(LoaderError::Syscall { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Freezes the map: no syscall writes it from now on (programs still may, unless the map
    /// was created read-only for them).
    pub fn freeze(&self) -> Result<()> {
        let mut attr = self.attr(std::ptr::null(), std::ptr::null_mut());
        self.sys(BPF_MAP_FREEZE, &mut attr, "MAP_FREEZE")
    }

    /// The kernel's id of the map.
    pub fn id(&self) -> Result<u32> {
        self.data
            .info()
            .map(|i| i.id())
            .map_err(|e| LoaderError::Map {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// Pins the map at `path` (which must not exist); it is named by `path` from now on.
    pub fn pin(&mut self, path: &Path) -> Result<()> {
        self.data.pin(path).map_err(|e| LoaderError::Map {
            path: path.into(),
            message: format!("pinning: {e}"),
        })?;
        self.path = path.into();
        Ok(())
    }

    /// Every entry currently in the map.
    pub fn entries(&self) -> Result<Entries> {
        let mut out = Entries::new();
        let mut cur: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; self.key_size as usize];
            let key_ptr = cur.as_ref().map_or(std::ptr::null(), |k| k.as_ptr());
            let mut attr = self.attr(key_ptr, next.as_mut_ptr());
            match self.sys(BPF_MAP_GET_NEXT_KEY, &mut attr, "MAP_GET_NEXT_KEY") {
                Ok(()) => {}
                Err(LoaderError::Syscall { source, .. })
                    if source.raw_os_error() == Some(libc::ENOENT) =>
                {
                    return Ok(out)
                }
                Err(e) => return Err(e),
            }
            // An entry deleted between the two calls is simply skipped.
            if let Some(v) = self.lookup(&next)? {
                out.insert(next.clone(), v);
            }
            cur = Some(next);
        }
    }

    fn attr(&self, key: *const u8, value: *mut u8) -> ElemAttr {
        ElemAttr {
            map_fd: self.data.fd().as_fd().as_raw_fd() as u32,
            key: key as u64,
            value_or_next_key: value as u64,
            ..ElemAttr::default()
        }
    }

    fn sys(&self, cmd: libc::c_long, attr: &mut ElemAttr, name: &'static str) -> Result<()> {
        // SAFETY: `attr` points at a live, correctly laid out bpf_attr prefix whose key/value
        // pointers reference buffers of the map's key/value sizes (checked by the callers).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut ElemAttr,
                std::mem::size_of::<ElemAttr>() as libc::c_uint,
            )
        };
        if rc < 0 {
            return Err(LoaderError::Syscall {
                cmd: name,
                path: self.path.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() != self.key_size as usize {
            return Err(self.size_error("key", key.len(), self.key_size));
        }
        Ok(())
    }

    fn size_error(&self, what: &str, got: usize, want: u32) -> LoaderError {
        LoaderError::Map {
            path: self.path.clone(),
            message: format!("{what} of {got} bytes, the map's {what}s have {want}"),
        }
    }
}
