//! `--policy-dir`: the directory's policy files are applied when they appear or change and
//! withdrawn when they disappear. Woken by inotify (the `notify` crate, recursive); where
//! inotify is unavailable (no instances or watches left, a file system without it) the
//! directory is rescanned once a second instead. A file set that fails validation is logged
//! with its diagnostics and changes nothing until the files change again. Symbolic links out
//! of the directory are not followed (`policy_dir.rs`).

use super::model::{PolicyDelete, PolicyPut, SourceDoc};
use super::state::Agent;
use super::Handle;
use notify::Watcher;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Without inotify: how often the directory is rescanned.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// After a first notification, how long further ones are gathered into the same rescan (an
/// editor's save or a `cp -r` is a burst of events).
const SETTLE: Duration = Duration::from_millis(20);

/// What wakes the watcher: inotify events, or a timer when inotify is unavailable.
enum Wake {
    Notify {
        /// Kept alive: dropping it ends the watch.
        _watcher: notify::RecommendedWatcher,
        events: mpsc::UnboundedReceiver<()>,
    },
    Poll,
}

impl Wake {
    fn new(dir: &Path) -> Wake {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            // An error (an overflowed queue) also means "look again".
            let _ = ev;
            let _ = tx.send(());
        })
        .and_then(|mut w| {
            w.watch(dir, notify::RecursiveMode::Recursive)?;
            Ok(w)
        });
        match watcher {
            Ok(w) => Wake::Notify {
                _watcher: w,
                events: rx,
            },
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no inotify watch on the policy directory: rescanning it every second");
                Wake::Poll
            }
        }
    }

    /// Waits until the directory may have changed.
    async fn next(&mut self) {
        match self {
            Wake::Notify { events, .. } => {
                if events.recv().await.is_none() {
                    // The watcher's thread is gone: fall back to rescanning.
                    *self = Wake::Poll;
                    return;
                }
                tokio::time::sleep(SETTLE).await;
                while events.try_recv().is_ok() {}
            }
            Wake::Poll => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

pub async fn watch(dir: PathBuf, agent: Handle) {
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    // Rescans until the directory exists and its watch is set up.
    let mut wake = Wake::Poll;
    let mut want_watch = true;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut last_failed: Option<BTreeMap<String, String>> = None;
    let mut refused = Vec::new();
    loop {
        // The watch is set up before the scan: nothing changed between them goes unnoticed.
        if want_watch && dir.is_dir() {
            wake = Wake::new(&dir);
            want_watch = false;
        }
        match scan(&dir, &mut refused) {
            Ok(now) if now != seen && last_failed.as_ref() != Some(&now) => {
                let (changed, removed) = diff(&seen, &now);
                match agent.write(move |a| apply(a, changed, removed)).await {
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
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "reading the policy directory");
                if !dir.is_dir() {
                    // Gone: its watch with it. Rescanned until it is back, then watched again.
                    wake = Wake::Poll;
                    want_watch = true;
                }
            }
        }
        wake.next().await;
    }
}

/// The directory's policy files; refused entries are logged (by name only) when they first
/// appear.
fn scan(
    dir: &Path,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_file_wakes_the_inotify_watch() {
        let dir = tempfile::tempdir().unwrap();
        let mut wake = Wake::new(dir.path());
        assert!(
            matches!(wake, Wake::Notify { .. }),
            "inotify is available here"
        );
        std::fs::write(dir.path().join("a.yaml"), "x").unwrap();
        // Well under the polling interval: the event, not a timer, woke it.
        tokio::time::timeout(POLL_INTERVAL / 2, wake.next())
            .await
            .expect("woken by the new file");
    }

    #[tokio::test]
    async fn without_a_watchable_directory_it_falls_back_to_polling() {
        let dir = tempfile::tempdir().unwrap();
        let wake = Wake::new(&dir.path().join("missing"));
        assert!(matches!(wake, Wake::Poll));
    }
}
