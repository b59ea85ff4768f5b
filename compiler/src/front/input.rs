//! Reading input paths: files, directories (recursively, `*.yaml|*.yml|*.json`, sorted) and `-`
//! for standard input.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One input file as read: the path as the user gave it (`-` for stdin) and its raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: String,
    pub text: Vec<u8>,
}

/// The inputs could not be read at all (exit status 2); problems *inside* files are diagnostics.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(cilium_policy::input))]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no such file or directory")]
    #[diagnostic(
        code(cilium_policy::input),
        help("pass a policy file, a directory of them, or `-` for stdin")
    )]
    NotFound { path: String },
    #[error("no policy files under {paths}")]
    #[diagnostic(
        code(cilium_policy::input),
        help("directories are searched recursively for *.yaml, *.yml and *.json files")
    )]
    NoPolicyFiles { paths: String },
}

/// Largest input file parsed (bytes). Larger inputs are read only up to one byte past the limit
/// and reported by `parse_sources` as `input-too-large`, without being parsed.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

fn is_policy_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let io = |e| InputError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        // The entry's type (no extra `stat`), following a symbolic link only when it is one.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => entry.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => entry.path().is_dir(),
        };
        entries.push((entry.path(), is_dir));
    }
    entries.sort();
    for (p, is_dir) in entries {
        if is_dir {
            walk(&p, out)?;
        } else if is_policy_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads at most `MAX_FILE_BYTES + 1` bytes (enough for `parse_sources` to see the excess).
fn read_limited(path: &str, mut r: impl Read, size_hint: u64) -> Result<Vec<u8>, InputError> {
    let mut buf = Vec::with_capacity(size_hint.min(MAX_FILE_BYTES) as usize + 1);
    r.by_ref()
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| InputError::Io {
            path: path.to_string(),
            source: e,
        })?;
    Ok(buf)
}

/// Like [`read_inputs`], but an input that yields nothing at all (directories without a policy
/// file) is an error: a command given only an empty or mistyped directory must not pass quietly.
pub fn read_policy_inputs(paths: &[PathBuf]) -> Result<Vec<Source>, InputError> {
    let sources = read_inputs(paths)?;
    if sources.is_empty() && !paths.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(InputError::NoPolicyFiles {
            paths: shown.join(", "),
        });
    }
    Ok(sources)
}

/// Reads every input: a file as given (any extension), a directory recursively (policy
/// extensions only, sorted), `-` from standard input.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Source>, InputError> {
    let mut sources = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            sources.push(Source {
                path: "-".into(),
                text: read_limited("-", std::io::stdin().lock(), 0)?,
            });
            continue;
        }
        let shown = p.display().to_string();
        let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => InputError::NotFound {
                path: shown.clone(),
            },
            _ => InputError::Io {
                path: shown.clone(),
                source: e,
            },
        })?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files)?;
            files
        } else {
            vec![p.clone()]
        };
        for f in files {
            let path = f.display().to_string();
            let file = std::fs::File::open(&f).map_err(|e| InputError::Io {
                path: path.clone(),
                source: e,
            })?;
            let size = file.metadata().map_or(0, |m| m.len());
            let text = read_limited(&path, file, size)?;
            sources.push(Source { path, text });
        }
    }
    Ok(sources)
}
