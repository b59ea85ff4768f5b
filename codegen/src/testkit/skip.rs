//! Tests that cannot run here (not root, no clang, no etcd, no podman) pass without running; so that a
//! green run does not hide them, each skip is printed and, when `CP_TEST_SKIP_LOG` names a
//! file (`tools/test.sh` sets it), appended to it as `need<TAB>test`, and the script ends the
//! run with a count per need.

use std::io::Write;
use std::path::Path;

/// The environment variable naming the skip log.
pub const LOG_ENV: &str = "CP_TEST_SKIP_LOG";

/// What a skipped test needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Root: BPF, network namespaces, bpffs mounts.
    Root,
    /// clang-19 to build the datapath objects.
    Clang,
    /// An `etcd` binary.
    Etcd,
    /// Real containers: podman, runc, the CNI plugins and busybox-static.
    Podman,
}

impl Need {
    /// The word in the skip log (`tools/test.sh` counts by it).
    pub fn tag(self) -> &'static str {
        match self {
            Need::Root => "root",
            Need::Clang => "clang",
            Need::Etcd => "etcd",
            Need::Podman => "podman",
        }
    }

    /// Why the test did not run.
    pub fn why(self) -> &'static str {
        match self {
            Need::Root => "needs root (BPF, network namespaces)",
            Need::Clang => "no clang (Debian package clang-19)",
            Need::Etcd => "no etcd binary (Debian package etcd-server)",
            Need::Podman => {
                "needs podman, runc, containernetworking-plugins and busybox-static (Debian)"
            }
        }
    }
}

/// Records that `test` did not run for want of `need` (stderr, and the skip log if set).
pub fn skip(test: &str, need: Need) {
    eprintln!("skipping {test}: {}", need.why());
    let Some(path) = std::env::var_os(LOG_ENV) else {
        return;
    };
    if let Err(e) = record(Path::new(&path), test, need) {
        panic!(
            "{LOG_ENV}={}: recording the skip of {test}: {e}",
            path.to_string_lossy()
        );
    }
}

/// Appends `need<TAB>test` to the log at `path`: one short line per write on an O_APPEND file,
/// so the lines of concurrent tests do not mix.
fn record(path: &Path, test: &str, need: Need) -> std::io::Result<()> {
    let line = format!("{}\t{test}\n", need.tag());
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_has_a_distinct_tag() {
        let tags = [Need::Root, Need::Clang, Need::Etcd, Need::Podman].map(Need::tag);
        assert_eq!(tags, ["root", "clang", "etcd", "podman"]);
    }

    #[test]
    fn skips_append_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skips");
        record(&log, "a", Need::Root).unwrap();
        record(&log, "b", Need::Etcd).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "root\ta\netcd\tb\n");
    }
}
