//! The clang driver: finds clang (`$CLANG`, `clang-19`, `clang`), compiles the datapath with fixed
//! flags, surfaces C diagnostics verbatim, and caches objects by the hash of everything that
//! goes into them (sources, headers, flags, clang version).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The datapath sources, embedded so the binary compiles from anywhere.
pub const SOURCES: &[(&str, &str)] = &[
    ("bpf_lxc.c", include_str!("../../bpf-templates/bpf_lxc.c")),
    ("bpf_node.c", include_str!("../../bpf-templates/bpf_node.c")),
    (
        "include/bpf_api.h",
        include_str!("../../bpf-templates/include/bpf_api.h"),
    ),
    (
        "include/layout.h",
        include_str!("../../bpf-templates/include/layout.h"),
    ),
    (
        "include/maps.h",
        include_str!("../../bpf-templates/include/maps.h"),
    ),
    (
        "include/parse.h",
        include_str!("../../bpf-templates/include/parse.h"),
    ),
    (
        "include/policy.h",
        include_str!("../../bpf-templates/include/policy.h"),
    ),
    (
        "include/ct.h",
        include_str!("../../bpf-templates/include/ct.h"),
    ),
    (
        "include/flowcache.h",
        include_str!("../../bpf-templates/include/flowcache.h"),
    ),
    (
        "include/events.h",
        include_str!("../../bpf-templates/include/events.h"),
    ),
    (
        "include/proxy.h",
        include_str!("../../bpf-templates/include/proxy.h"),
    ),
];

/// The programs built from [`SOURCES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// `bpf_lxc.c`: an endpoint's pair, configured by `ep_config.h` and `node_config.h`.
    Endpoint,
    /// `bpf_node.c`: the node's L7-redirect program on `lo` (no configuration).
    Node,
}

impl Program {
    pub const fn source(self) -> &'static str {
        match self {
            Program::Endpoint => "bpf_lxc.c",
            Program::Node => "bpf_node.c",
        }
    }
}

/// The fixed optimisation/target flags (include paths and `-c`/`-o` are added around them).
pub const FLAGS: &[&str] = &["-O2", "-g", "-target", "bpf", "-Wall"];

#[derive(Debug, thiserror::Error)]
pub enum ClangError {
    #[error("clang not found (tried {tried}); install the Debian package `clang-19` (apt-get install clang-19) or set CLANG to a clang with the BPF target")]
    NotFound { tried: String },
    #[error("{clang} failed ({status}) compiling the datapath for {what}:\n{stderr}")]
    Failed {
        clang: String,
        status: String,
        what: String,
        stderr: String,
    },
    #[error("I/O error in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClangError + '_ {
    move |source| ClangError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A clang that runs, with its version line.
#[derive(Clone, Debug)]
pub struct Clang {
    pub path: PathBuf,
    pub version: String,
}

impl Clang {
    /// `$CLANG`, then `clang-19`, then `clang` on PATH.
    pub fn find() -> Result<Clang, ClangError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(c) = std::env::var_os("CLANG").filter(|c| !c.is_empty()) {
            candidates.push(PathBuf::from(c));
        }
        candidates.push("clang-19".into());
        candidates.push("clang".into());
        for c in &candidates {
            if let Ok(out) = Command::new(c).arg("--version").output() {
                if out.status.success() {
                    let version = String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    return Ok(Clang {
                        path: c.clone(),
                        version,
                    });
                }
            }
        }
        let tried = candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(ClangError::NotFound { tried })
    }

    /// Compiles the datapath with `ep_header` as `ep_config.h` and `node_header` as
    /// `node_config.h` into `out`. `what` names the endpoint or template in errors.
    pub fn compile(
        &self,
        ep_header: &str,
        node_header: &str,
        out: &Path,
        what: &str,
    ) -> Result<(), ClangError> {
        self.compile_program(Program::Endpoint, ep_header, node_header, out, what)
    }

    /// Compiles `program` (the headers are unused by [`Program::Node`]) into `out`.
    pub fn compile_program(
        &self,
        program: Program,
        ep_header: &str,
        node_header: &str,
        out: &Path,
        what: &str,
    ) -> Result<(), ClangError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("temporary directory")))?;
        for (name, text) in SOURCES
            .iter()
            .chain(&[("ep_config.h", ep_header), ("node_config.h", node_header)])
        {
            let p = dir.path().join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&p, text).map_err(io(&p))?;
        }
        let mut cmd = Command::new(&self.path);
        cmd.args(FLAGS)
            .arg("-I")
            .arg(dir.path())
            .arg("-I")
            .arg(dir.path().join("include"));
        if let Some(multiarch) = multiarch_include() {
            cmd.arg("-I").arg(multiarch);
        }
        cmd.arg("-c")
            .arg(dir.path().join(program.source()))
            .arg("-o")
            .arg(out);
        let output = cmd.output().map_err(io(&self.path))?;
        if !output.status.success() {
            return Err(ClangError::Failed {
                clang: self.path.display().to_string(),
                status: output.status.to_string(),
                what: what.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    }
}

/// `<asm/types.h>` lives in the multiarch directory on Debian; `-target bpf` does not add it.
pub fn multiarch_include() -> Option<PathBuf> {
    let p = PathBuf::from(format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH));
    p.is_dir().then_some(p)
}

/// Objects by content hash, in one directory.
#[derive(Clone, Debug)]
pub struct ObjectCache {
    pub dir: PathBuf,
}

impl ObjectCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ObjectCache { dir: dir.into() }
    }

    /// The hash of everything that determines the object.
    pub fn key(clang: &Clang, ep_header: &str, node_header: &str) -> String {
        Self::program_key(clang, Program::Endpoint, ep_header, node_header)
    }

    fn program_key(clang: &Clang, program: Program, ep_header: &str, node_header: &str) -> String {
        let mut h = Sha256::new();
        for part in [
            program.source(),
            clang.version.as_str(),
            &FLAGS.join(" "),
            ep_header,
            node_header,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        for (name, text) in SOURCES {
            h.update(name.as_bytes());
            h.update((text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cached object for these headers, compiling it on a miss. Returns (path, was_cached).
    pub fn get_or_compile(
        &self,
        clang: &Clang,
        ep_header: &str,
        node_header: &str,
        what: &str,
    ) -> Result<(PathBuf, bool), ClangError> {
        self.get_or_compile_program(clang, Program::Endpoint, ep_header, node_header, what)
    }

    /// The node's L7-redirect object (`bpf_node.c`), compiled on a miss.
    pub fn node_object(&self, clang: &Clang) -> Result<(PathBuf, bool), ClangError> {
        self.get_or_compile_program(clang, Program::Node, "", "", "the node program")
    }

    fn get_or_compile_program(
        &self,
        clang: &Clang,
        program: Program,
        ep_header: &str,
        node_header: &str,
        what: &str,
    ) -> Result<(PathBuf, bool), ClangError> {
        let key = Self::program_key(clang, program, ep_header, node_header);
        let path = self.dir.join(format!("{key}.o"));
        if path.is_file() {
            return Ok((path, true));
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        // A private temporary name: concurrent compilations of one key must not collide.
        let tmp = tempfile::Builder::new()
            .prefix(&key)
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(io(&self.dir))?;
        clang.compile_program(program, ep_header, node_header, tmp.path(), what)?;
        tmp.persist(&path).map_err(|e| ClangError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok((path, false))
    }
}
