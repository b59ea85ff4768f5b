//! The BPF filesystem: check that `--bpf-root` is a bpffs, mount one there when it is not.

use crate::error::{LoaderError, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `BPF_FS_MAGIC` from `<linux/magic.h>`.
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Is `path` the root of (or inside) a mounted BPF filesystem?
pub fn is_bpffs(path: &Path) -> Result<bool> {
    let c = cstring(path)?;
    // SAFETY: `statfs` is a plain C struct of integers, for which all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-buffer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(LoaderError::io(path, std::io::Error::last_os_error()));
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Makes sure `path` is a bpffs: creates the directory if needed and mounts a fresh BPF
/// filesystem instance on it when it is not one already (as `mount -t bpf bpf PATH` does).
pub fn ensure_bpffs(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| LoaderError::io(path, e))?;
    if is_bpffs(path)? {
        return Ok(());
    }
    mount_bpffs(path)?;
    tracing::info!(path = %path.display(), "mounted BPF filesystem");
    Ok(())
}

/// Mounts a new bpffs instance on `path` (each mount is a separate instance: pins made under
/// one are invisible under another, which the integration tests rely on for isolation).
pub fn mount_bpffs(path: &Path) -> Result<()> {
    let target = cstring(path)?;
    let fstype = CString::from(c"bpf");
    // SAFETY: all pointers are valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(LoaderError::Mount {
            path: path.into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Lazily unmounts whatever is mounted on `path`.
pub fn unmount(path: &Path) -> Result<()> {
    let target = cstring(path)?;
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        return Err(LoaderError::io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

pub(crate) fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        LoaderError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"),
        )
    })
}
