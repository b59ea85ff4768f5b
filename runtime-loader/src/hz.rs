//! The kernel's HZ (jiffies per second), which the datapath needs to turn connection-tracking
//! lifetimes in seconds into `bpf_jiffies64()` ticks. Like Cilium's probe, it is measured: two
//! samples of the kernel's jiffies (`/proc/timer_list`, which prints `now at <ns> nsecs` and
//! `jiffies: <n>`) 100 ms apart, rounded to the nearest HZ a kernel can be built with. Measured
//! once per process.

use std::sync::OnceLock;
use std::time::Duration;

/// The values of CONFIG_HZ.
const KNOWN_HZ: [u32; 4] = [100, 250, 300, 1000];
/// Used (with a warning) when the kernel does not expose its jiffies.
pub const FALLBACK_HZ: u32 = 250;

/// (monotonic ns, jiffies) from one read of `/proc/timer_list`.
fn sample() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/timer_list").ok()?;
    let mut now = None;
    let mut jiffies = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("now at ") {
            now = now.or(rest.split_whitespace().next()?.parse().ok());
        } else if let Some(rest) = line.strip_prefix("jiffies: ") {
            jiffies = jiffies.or(rest.trim().parse().ok());
        }
    }
    Some((now?, jiffies?))
}

/// The nearest CONFIG_HZ value to `ticks` jiffies over `ns` nanoseconds.
pub fn nearest_hz(ticks: u64, ns: u64) -> Option<u32> {
    if ns == 0 {
        return None;
    }
    let measured = ticks as f64 * 1e9 / ns as f64;
    KNOWN_HZ
        .into_iter()
        .min_by(|a, b| {
            let (da, db) = (
                (f64::from(*a) - measured).abs(),
                (f64::from(*b) - measured).abs(),
            );
            da.total_cmp(&db)
        })
        .filter(|hz| (f64::from(*hz) - measured).abs() < f64::from(*hz) * 0.1)
}

fn measure() -> Option<u32> {
    let (t0, j0) = sample()?;
    std::thread::sleep(Duration::from_millis(100));
    let (t1, j1) = sample()?;
    nearest_hz(j1.checked_sub(j0)?, t1.checked_sub(t0)?)
}

/// The kernel's HZ (measured on first use).
pub fn kernel_hz() -> u32 {
    static HZ: OnceLock<u32> = OnceLock::new();
    *HZ.get_or_init(|| {
        measure().unwrap_or_else(|| {
            tracing::warn!(
                fallback = FALLBACK_HZ,
                "could not measure the kernel's HZ from /proc/timer_list; connection-tracking lifetimes assume the fallback"
            );
            FALLBACK_HZ
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_a_config_hz() {
        assert_eq!(nearest_hz(25, 100_000_000), Some(250));
        assert_eq!(nearest_hz(26, 100_000_000), Some(250));
        assert_eq!(nearest_hz(30, 100_000_000), Some(300));
        assert_eq!(nearest_hz(101, 100_000_000), Some(1000));
        assert_eq!(nearest_hz(10, 100_000_000), Some(100));
        // Nothing plausible: refuse rather than guess.
        assert_eq!(nearest_hz(60, 100_000_000), None);
        assert_eq!(nearest_hz(1, 0), None);
    }
}
