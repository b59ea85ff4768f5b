//! Reading `--policy-dir`: its `*.yaml|*.yml|*.json` files, recursively. The agent runs as
//! root, so a symbolic link that leads out of the directory (e.g. to a root-only file) is
//! refused and logged by its name only: nothing of what it points to is read or echoed.
//! Links within the directory are followed once (no cycles).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Policy files by path (as found under the directory) with their text, and the entries
/// that were refused with why.
#[derive(Debug, Default, PartialEq)]
pub struct Scan {
    pub files: BTreeMap<String, String>,
    pub refused: Vec<(String, &'static str)>,
}

fn is_policy_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Scans `dir` (which must be canonical).
pub fn scan(dir: &Path) -> std::io::Result<Scan> {
    let mut out = Scan::default();
    let mut seen = BTreeSet::new();
    walk(dir, dir, &mut seen, &mut out)?;
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    seen: &mut BTreeSet<PathBuf>,
    out: &mut Scan,
) -> std::io::Result<()> {
    if !seen.insert(std::fs::canonicalize(dir)?) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        let shown = p.display().to_string();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue; // removed meanwhile
        };
        let target = if meta.file_type().is_symlink() {
            match std::fs::canonicalize(&p) {
                Ok(t) if t.starts_with(root) => t,
                Ok(_) => {
                    out.refused
                        .push((shown, "a symbolic link out of the policy directory"));
                    continue;
                }
                Err(_) => {
                    out.refused.push((shown, "a dangling symbolic link"));
                    continue;
                }
            }
        } else {
            p.clone()
        };
        let meta = std::fs::metadata(&target)?;
        if meta.is_dir() {
            walk(root, &target, seen, out)?;
        } else if is_policy_file(&p) {
            if !meta.is_file() {
                out.refused.push((shown, "not a regular file"));
                continue;
            }
            let mut bytes = Vec::new();
            std::fs::File::open(&target)?
                .take(compiler::front::input::MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes)?;
            out.files
                .insert(shown, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_out_of_the_directory_are_refused_unread() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.yaml");
        std::fs::write(&secret, "root-only: s3cret").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::write(dir.join("a.yaml"), "a").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/b.json"), "b").unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        symlink(&secret, dir.join("evil.yaml")).unwrap();
        symlink(outside.path(), dir.join("evil-dir")).unwrap();
        symlink(dir.join("a.yaml"), dir.join("same.yaml")).unwrap();
        symlink(&dir, dir.join("sub/loop")).unwrap();
        symlink(dir.join("gone"), dir.join("dangling.yaml")).unwrap();
        let s = scan(&dir).unwrap();
        let files: Vec<&str> = s.files.keys().map(|k| k.as_str()).collect();
        let at = |p: &str| dir.join(p).display().to_string();
        assert_eq!(files, [at("a.yaml"), at("same.yaml"), at("sub/b.json")]);
        assert!(!format!("{s:?}").contains("s3cret"));
        let refused: Vec<String> = s.refused.iter().map(|r| r.0.clone()).collect();
        assert_eq!(
            refused,
            [at("dangling.yaml"), at("evil-dir"), at("evil.yaml")]
        );
    }
}
