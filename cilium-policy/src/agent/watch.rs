//! `--policy-dir`: the directory's policy files are applied when they appear or change and
//! withdrawn when they disappear. Polled once a second (no inotify dependency; a change is
//! picked up within about a second). A file set that fails validation is logged with its
//! diagnostics and changes nothing until the files change again.

use super::api::Shared;
use super::model::{PolicyDelete, PolicyPut, SourceDoc};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub async fn watch(dir: PathBuf, agent: Shared) {
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut last_failed: Option<BTreeMap<String, String>> = None;
    loop {
        let now = match scan(&dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "reading the policy directory");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if now != seen && last_failed.as_ref() != Some(&now) {
            let (changed, removed) = diff(&seen, &now);
            let a = agent.clone();
            let res = tokio::task::spawn_blocking(move || apply(&a, changed, removed)).await;
            match res {
                Ok(Ok(rev)) => {
                    tracing::info!(dir = %dir.display(), revision = rev, "policy directory applied");
                    seen = now;
                    last_failed = None;
                }
                Ok(Err(e)) => {
                    tracing::error!(dir = %dir.display(), error = %e, diagnostics = ?e.body.diagnostics, "policy directory refused; nothing changed");
                    last_failed = Some(now);
                }
                Err(e) => tracing::error!(error = %e, "policy directory task failed"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn scan(dir: &std::path::Path) -> Result<BTreeMap<String, String>, String> {
    let sources = compiler::front::read_inputs(&[dir.to_path_buf()]).map_err(|e| e.to_string())?;
    Ok(sources
        .into_iter()
        .map(|s| (s.path, String::from_utf8_lossy(&s.text).into_owned()))
        .collect())
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
    agent: &Shared,
    changed: Vec<SourceDoc>,
    removed: Vec<String>,
) -> Result<u64, super::error::ApiError> {
    let mut a = agent
        .lock()
        .map_err(|_| super::error::ApiError::internal("agent state lock poisoned"))?;
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
