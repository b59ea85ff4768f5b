//! Where a node's pinned state lives under the BPF filesystem:
//!
//! ```text
//! <bpf-root>/cilium-policy/<node>/maps/<name>                      shared maps (ipcache, CT, events)
//! <bpf-root>/cilium-policy/<node>/endpoints/<id>/maps/<name>       per-endpoint maps (policy, state)
//! <bpf-root>/cilium-policy/<node>/endpoints/<id>/link-<hook>       tcx links (kernels ≥ 6.6)
//! ```
//!
//! A restarted agent finds everything again from these paths; nothing else is needed to keep
//! enforcing while no agent runs.

use crate::attach::Hook;
use crate::error::{LoaderError, Result};
use std::path::{Path, PathBuf};

/// Endpoint ids are 16-bit, as in Cilium's datapath.
pub type EndpointId = u16;

/// Checks a user-supplied name before it becomes part of a path or a kernel object name.
pub fn validate_name(what: &'static str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(LoaderError::InvalidName {
            what,
            name: name.to_string(),
            max,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLayout {
    root: PathBuf,
}

impl NodeLayout {
    /// The layout of node `node` under `bpf_root` (which must be a bpffs, see
    /// [`crate::bpffs::ensure_bpffs`]). Creates the directories.
    pub fn create(bpf_root: &Path, node: &str) -> Result<Self> {
        validate_name("node name", node, 64)?;
        let layout = NodeLayout {
            root: bpf_root.join("cilium-policy").join(node),
        };
        for dir in [layout.root.join("maps"), layout.root.join("endpoints")] {
            std::fs::create_dir_all(&dir).map_err(|e| LoaderError::io(&dir, e))?;
        }
        Ok(layout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Pin path of a map shared by every endpoint of the node.
    pub fn shared_map(&self, name: &str) -> Result<PathBuf> {
        validate_name("map name", name, 15)?;
        Ok(self.root.join("maps").join(name))
    }

    /// Pin path of the tcx link of the node's L7-redirect program on `lo` ([`crate::proxy`]).
    pub fn proxy_link(&self) -> PathBuf {
        self.root.join("link-lo-to-proxy")
    }

    pub fn endpoint_dir(&self, id: EndpointId) -> PathBuf {
        self.root.join("endpoints").join(id.to_string())
    }

    /// Pin path of an endpoint's own map; creates the endpoint's directory (for pinning).
    pub fn endpoint_map(&self, id: EndpointId, name: &str) -> Result<PathBuf> {
        let path = self.endpoint_map_path(id, name)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LoaderError::io(dir, e))?;
        }
        Ok(path)
    }

    /// Pin path of an endpoint's own map, without touching the filesystem (for maps already
    /// pinned: the agent's writes look it up for every change).
    pub fn endpoint_map_path(&self, id: EndpointId, name: &str) -> Result<PathBuf> {
        validate_name("map name", name, 15)?;
        Ok(self.endpoint_dir(id).join("maps").join(name))
    }

    /// Every pinned map of the table (`codegen::maps`) with its pin path for endpoint `id`:
    /// node maps under the node, the endpoint's own under the endpoint (creates its directory).
    pub fn map_pins(&self, id: EndpointId) -> Result<Vec<(&'static str, PathBuf)>> {
        use codegen::maps::{pinned, Pin};
        let node = pinned(Pin::Node).map(|m| Ok((m.name, self.shared_map(m.name)?)));
        let own = pinned(Pin::Endpoint).map(|m| Ok((m.name, self.endpoint_map(id, m.name)?)));
        node.chain(own).collect()
    }

    /// Pin path of an endpoint's tcx link for one hook; creates the endpoint's directory.
    pub fn link(&self, id: EndpointId, hook: Hook) -> Result<PathBuf> {
        let dir = self.endpoint_dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| LoaderError::io(&dir, e))?;
        Ok(dir.join(format!("link-{}", hook.name())))
    }

    /// Endpoints that have pinned state (after a restart: what the previous agent left).
    pub fn pinned_endpoints(&self) -> Result<Vec<EndpointId>> {
        let dir = self.root.join("endpoints");
        let rd = std::fs::read_dir(&dir).map_err(|e| LoaderError::io(&dir, e))?;
        let mut ids: Vec<EndpointId> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Unpins everything of one endpoint (maps are freed once no program uses them).
    pub fn remove_endpoint(&self, id: EndpointId) -> Result<()> {
        remove_tree(&self.endpoint_dir(id))
    }

    /// Unpins everything of the node.
    pub fn remove_all(&self) -> Result<()> {
        remove_tree(&self.root)
    }
}

/// `rm -r` for bpffs, which does not support `remove_dir_all`'s openat-based walk everywhere:
/// unlink pins, then remove directories bottom-up. A missing path is not an error.
fn remove_tree(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(LoaderError::io(path, e)),
    };
    if meta.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| LoaderError::io(path, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| LoaderError::io(path, e))?;
            remove_tree(&entry.path())?;
        }
        std::fs::remove_dir(path).map_err(|e| LoaderError::io(path, e))
    } else {
        std::fs::remove_file(path).map_err(|e| LoaderError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_layout_are_refused() {
        for bad in ["", ".", "..", "a/b", "x y", "é", "a\0b", &"n".repeat(65)] {
            assert!(validate_name("node name", bad, 64).is_err(), "{bad:?}");
        }
        for good in ["node-1", "k8s_worker.2", "N"] {
            assert!(validate_name("node name", good, 64).is_ok(), "{good:?}");
        }
    }
}
