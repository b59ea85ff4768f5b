//! `--policy-dir`: the directory's policy files are applied when they appear or change and
//! withdrawn when they disappear. Polled once a second (no inotify dependency; a change is
//! picked up within about a second). A file set that fails validation is logged with its
//! diagnostics and changes nothing until the files change again. Symbolic links out of the
//! directory are not followed (`policy_dir.rs`).

use super::model::{PolicyDelete, PolicyPut, SourceDoc};
use super::state::Agent;
use super::Handle;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub async fn watch(dir: PathBuf, agent: Handle) {
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut last_failed: Option<BTreeMap<String, String>> = None;
    let mut refused = Vec::new();
    loop {
        let now = match scan(&dir, &mut refused) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "reading the policy directory");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if now != seen && last_failed.as_ref() != Some(&now) {
            let (changed, removed) = diff(&seen, &now);
            let res = agent.write(move |a| apply(a, changed, removed)).await;
            match res {
                Ok(rev) => {
                    tracing::info!(dir = %dir.display(), revision = rev, "policy directory applied");
                    seen = now;
                    last_failed = None;
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, diagnostics = ?e.diagnostics(), "policy directory refused; nothing changed");
                    last_failed = Some(now);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The directory's policy files; refused entries are logged (by name only) when they first
/// appear.
fn scan(
    dir: &std::path::Path,
    logged: &mut Vec<(String, &'static str)>,
) -> Result<BTreeMap<String, String>, String> {
    let s = super::policy_dir::scan(dir).map_err(|e| e.to_string())?;
    for (path, why) in &s.refused {
        if !logged.iter().any(|l| &l.0 == path) {
            tracing::warn!(path = %path, "policy directory entry ignored: {why}");
        }
    }
    *logged = s.refused;
    Ok(s.files)
}

fn diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> (Vec<SourceDoc>, Vec<String>) {
    let changed = new
        .iter()
        .filter(|(p, t)| old.get(*p) != Some(*t))
        .map(|(p, t)| SourceDoc {
            path: p.clone(),
            text: t.clone(),
        })
        .collect();
    let removed = old
        .keys()
        .filter(|p| !new.contains_key(*p))
        .cloned()
        .collect();
    (changed, removed)
}

fn apply(
    a: &mut Agent,
    changed: Vec<SourceDoc>,
    removed: Vec<String>,
) -> Result<u64, super::error::AgentError> {
    let mut rev = 0;
    if !changed.is_empty() {
        rev = a
            .put_policy(PolicyPut {
                sources: changed,
                wait: true,
            })?
            .revision;
    }
    if !removed.is_empty() {
        rev = a
            .delete_policy(PolicyDelete {
                paths: removed,
                wait: true,
                ..PolicyDelete::default()
            })?
            .revision;
    }
    Ok(rev)
}
