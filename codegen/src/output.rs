//! The compile output directory: `manifest.json`, node artefacts, and one folder per endpoint
//! (`ep_config.h`, `bpf_lxc.o`, `policy.img`, `ranges.img`, `addr.img`), plus the text form of map entries
//! (`compile --emit maps`).

use crate::generate::{CodegenError, EndpointArtefacts};
use crate::layout::*;
use crate::rules::RuleRow;
use ir::IpCache;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Version of the manifest format and of the object layout it describes: 6 since the programs
/// name the node's CT tables directly (5: a map of maps per family holding a TCP and an
/// other-protocols table; 4: the node-wide CT maps with keys holding the endpoint, each
/// endpoint's policy map its own size).
pub const MANIFEST_VERSION: u32 = 6;

/// Why a `compile` output directory's manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not a compile manifest: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: manifest version {found}, but this build loads only version {MANIFEST_VERSION} (objects of another version have other map layouts); run `cilium-policy compile` again with this build", path.display())]
    Version { path: PathBuf, found: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// The map sizes and flow-cache shape every object was built with.
    pub sizes: crate::MapSizes,
    /// The oldest Linux the objects load on ([`crate::MapSizes::min_kernel`]).
    pub min_kernel: String,
    /// `node_config.h`, relative to the output directory.
    pub node_header: String,
    /// The ipcache prefix image (`cp_ipcache`, prefixes shorter than a host address).
    pub ipcache_image: String,
    /// The ipcache host image (`cp_ipcache_host`, /32 and /128 entries).
    pub ipcache_host_image: String,
    /// Entries of both ipcache images.
    pub ipcache_entries: usize,
    /// Rule id → policy and file:line (`rules.json`).
    pub rules: String,
    pub endpoints: Vec<ManifestEndpoint>,
}

impl Manifest {
    /// Reads `dir/manifest.json`, refusing a manifest of another [`MANIFEST_VERSION`] before
    /// reading anything else of it.
    pub fn read(dir: &Path) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let path = dir.join("manifest.json");
        let text = std::fs::read(&path).map_err(|source| ManifestError::Io {
            path: path.clone(),
            source,
        })?;
        let parse = |e: serde_json::Error| ManifestError::Parse {
            path: path.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        };
        let found = serde_json::from_slice::<Version>(&text)
            .map_err(parse)?
            .version;
        if found != MANIFEST_VERSION {
            return Err(ManifestError::Version { path, found });
        }
        serde_json::from_slice(&text).map_err(parse)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEndpoint {
    pub id: u32,
    pub name: String,
    pub identity: u32,
    pub addresses: Vec<String>,
    pub header: String,
    pub object: String,
    /// The `cp_policy` hash image (exact ports and wildcards).
    pub policy_image: String,
    /// The `cp_policy_rng` image (port ranges), when the endpoint has any.
    pub range_image: Option<String>,
    pub addr_image: Option<String>,
    /// Entries of the policy image.
    pub policy_entries: usize,
    /// `max_entries` to create its `cp_policy` with (the object carries the most,
    /// `sizes.policy_map`): loaders pass `maps::endpoint_max_entries(policy_capacity)`.
    pub policy_capacity: u32,
    /// Entries of the range image.
    pub range_entries: usize,
    pub addr_entries: usize,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
    /// Compile-time features of its object.
    pub features: crate::Features,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CodegenError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| CodegenError::Io {
            path: parent.into(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| CodegenError::Io {
        path: path.into(),
        source,
    })
}

/// A file-system-safe folder name for an endpoint (`default/app1` → `default_app1`).
pub fn folder_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes one endpoint's folder under `out`; returns its manifest entry.
pub fn write_endpoint(out: &Path, a: &EndpointArtefacts) -> Result<ManifestEndpoint, CodegenError> {
    let folder = format!(
        "endpoints/{:05}-{}",
        a.config.id,
        folder_name(&a.config.name)
    );
    let rel = |f: &str| format!("{folder}/{f}");
    write(&out.join(rel("ep_config.h")), a.header.as_bytes())?;
    write(&out.join(rel("bpf_lxc.o")), &a.object)?;
    write(&out.join(rel("policy.img")), &a.policy_image().to_bytes())?;
    let optional = |file: &str, img: Option<crate::image::MapImage>| match img {
        Some(img) => write(&out.join(rel(file)), &img.to_bytes()).map(|_| Some(rel(file))),
        None => Ok(None),
    };
    let range_image = optional("ranges.img", a.range_image())?;
    let addr_image = optional("addr.img", a.addr_image())?;
    let c = &a.config;
    Ok(ManifestEndpoint {
        id: c.id,
        name: c.name.clone(),
        identity: c.identity.0,
        addresses: c
            .ipv4
            .map(|a| a.to_string())
            .into_iter()
            .chain(c.ipv6.map(|a| a.to_string()))
            .collect(),
        header: rel("ep_config.h"),
        object: rel("bpf_lxc.o"),
        policy_image: rel("policy.img"),
        range_image,
        addr_image,
        policy_entries: a.entries.hash_len(),
        policy_capacity: a.policy_capacity,
        range_entries: a.entries.range_len(),
        addr_entries: a.entries.addr.len(),
        ingress_enforced: a.features.ingress_policy,
        egress_enforced: a.features.egress_policy,
        features: a.features,
    })
}

/// Writes the node artefacts and the manifest.
pub fn write_node(
    out: &Path,
    sizes: &crate::MapSizes,
    node_header: &str,
    ipcache: &[crate::image::MapImage; 2],
    rules: &[RuleRow],
    endpoints: Vec<ManifestEndpoint>,
) -> Result<PathBuf, CodegenError> {
    write(&out.join("node_config.h"), node_header.as_bytes())?;
    let [hosts, prefixes] = ipcache;
    write(&out.join("ipcache_host.img"), &hosts.to_bytes())?;
    write(&out.join("ipcache.img"), &prefixes.to_bytes())?;
    write(&out.join("rules.json"), to_json(&rules).as_bytes())?;
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        sizes: *sizes,
        min_kernel: sizes.min_kernel().into(),
        node_header: "node_config.h".into(),
        ipcache_image: "ipcache.img".into(),
        ipcache_host_image: "ipcache_host.img".into(),
        ipcache_entries: hosts.len() + prefixes.len(),
        rules: "rules.json".into(),
        endpoints,
    };
    let path = out.join("manifest.json");
    write(&path, to_json(&manifest).as_bytes())?;
    Ok(path)
}

/// Pretty JSON with a final newline.
fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("plain data serializes");
    s.push('\n');
    s
}

/// `ingress identity 300 TCP 80/16 -> allow (r0, r3)` for every policy entry, then address classes.
pub fn render_entries(a: &EndpointArtefacts) -> String {
    let mut s = String::new();
    for e in &a.entries.policy {
        let dir = if e.direction == DIR_INGRESS {
            "ingress"
        } else {
            "egress"
        };
        let who = match e.identity {
            0 => "any".to_string(),
            id if id & ADDR_CLASS_BIT != 0 => format!("addr-class {}", id & !ADDR_CLASS_BIT),
            id => format!("identity {id}"),
        };
        let what = if e.protocol == 0 {
            "any-proto".to_string()
        } else {
            let proto = ir::Protocol::from_number(e.protocol)
                .map(|p| p.name().to_string())
                .unwrap_or_else(|| e.protocol.to_string());
            match e.port_prefix_len {
                0 => format!("{proto} *"),
                plen => format!("{proto} {}/{plen}", e.port),
            }
        };
        let v = &e.value;
        if e.is_marker() {
            let kinds: Vec<&str> = [
                (POLICY_HAS_EXACT, "exact ports"),
                (POLICY_HAS_PORTS, "all ports"),
                (POLICY_HAS_RANGES, "port ranges"),
                (POLICY_NO_WILDCARD, "no wildcard-identity lookup"),
            ]
            .iter()
            .filter(|(bit, _)| v.flags & bit != 0)
            .map(|(_, name)| *name)
            .collect();
            let _ = writeln!(s, "  {dir} {who} lookup marker: {}", kinds.join(", "));
            continue;
        }
        let verdict = match v.verdict {
            VERDICT_DENY => "deny".to_string(),
            VERDICT_REDIRECT => format!("redirect:{}", v.proxy_port),
            _ => "allow".to_string(),
        };
        let rules: Vec<String> = a
            .entries
            .rules_of(e)
            .iter()
            .map(|r| format!("r{}", r.0))
            .collect();
        let _ = writeln!(
            s,
            "  {dir} {who} {what} -> {verdict} ({})",
            rules.join(", ")
        );
    }
    for (k, v) in &a.entries.addr {
        let dir = if k.direction == DIR_INGRESS {
            "ingress"
        } else {
            "egress"
        };
        let len = k.prefixlen - 32;
        let addr = ip_addr(k.family, k.addr);
        let _ = writeln!(
            s,
            "  {dir} address {addr}/{len} -> addr-class {}",
            v.class_id & !ADDR_CLASS_BIT
        );
    }
    s
}

/// `10.0.0.1/32 -> 12345` per ipcache entry.
pub fn render_ipcache(cache: &IpCache) -> String {
    cache
        .entries
        .iter()
        .map(|(p, id)| format!("  {p} -> {id}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(manifest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.json"), manifest).unwrap();
        dir
    }

    #[test]
    fn a_manifest_of_another_version_is_refused_by_its_version() {
        // A version 5 manifest (CT tables behind maps of maps, its objects' maps differ) is
        // refused as such, not as a missing field.
        let dir = dir_with(r#"{"version": 5, "sizes": {}, "endpoints": []}"#);
        let err = Manifest::read(dir.path()).unwrap_err();
        assert!(
            matches!(err, ManifestError::Version { found: 5, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("manifest version 5") && msg.contains("only version 6"),
            "{msg}"
        );
        let bad = dir_with("{\"version\": 6,\n \"sizes\": [}");
        let err = Manifest::read(bad.path()).unwrap_err();
        assert!(matches!(err, ManifestError::Parse { line: 2, .. }), "{err}");
        let missing = tempfile::tempdir().unwrap();
        assert!(matches!(
            Manifest::read(missing.path()),
            Err(ManifestError::Io { .. })
        ));
    }
}
