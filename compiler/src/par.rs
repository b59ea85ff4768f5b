//! How many worker threads the parallel passes (parsing files, deriving labels) use: the
//! available parallelism, probed once per process (the probe reads cgroup files, which showed
//! up in the agent's per-change profile when it ran on every call).

use std::sync::OnceLock;

/// The number of worker threads to use (at least 1).
pub fn workers() -> usize {
    static WORKERS: OnceLock<usize> = OnceLock::new();
    *WORKERS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
