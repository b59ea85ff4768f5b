//! Where an agent request's time goes: the agent's debug spans (`--debug` logs each span's
//! `close time.busy=…` with its path, e.g. `job:datapath:plan:load:verifier{prog="…"}`), read
//! from the slice of its log one request wrote, and summed per span path over many requests.

use std::collections::BTreeMap;
use std::time::Duration;

/// The busy times of every closed span, by span path (fields other than `prog` dropped).
#[derive(Default)]
pub struct SpanTimes {
    by_path: BTreeMap<String, Vec<Duration>>,
    requests: usize,
}

impl SpanTimes {
    /// Adds the spans one request closed (`log`: the agent log lines it wrote).
    pub fn add_request(&mut self, log: &str) {
        self.requests += 1;
        let mut seen: BTreeMap<String, Duration> = BTreeMap::new();
        for line in log.lines() {
            if let Some((path, busy)) = close_event(&strip_ansi(line)) {
                // A span entered more than once per request (one per endpoint) is summed.
                *seen.entry(path).or_default() += busy;
            }
        }
        for (path, busy) in seen {
            self.by_path.entry(path).or_default().push(busy);
        }
    }

    /// One line per span path: in how many requests it ran, its p50 and p99 busy time.
    pub fn report(&mut self) -> String {
        let mut out = String::new();
        for (path, times) in &mut self.by_path {
            times.sort();
            let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
            out += &format!(
                "  {path:<55} {:>4}/{} p50 {:>8.2} ms  p99 {:>8.2} ms\n",
                times.len(),
                self.requests,
                at(0.5).as_secs_f64() * 1e3,
                at(0.99).as_secs_f64() * 1e3,
            );
        }
        out
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `… DEBUG a:b{endpoint=3}:c: target: close time.busy=1.2ms time.idle=3µs` → ("a:b:c", 1.2 ms).
fn close_event(line: &str) -> Option<(String, Duration)> {
    let (head, tail) = line.split_once(": close time.busy=")?;
    let busy = parse_duration(tail.split_whitespace().next()?)?;
    // head: `TIME LEVEL spans: target`; the span path is the last word before the target.
    let spans = head.rsplit_once(": ")?.0;
    let spans = spans.split_whitespace().last()?;
    Some((drop_endpoint_fields(spans), busy))
}

fn drop_endpoint_fields(spans: &str) -> String {
    let mut out = String::new();
    let mut rest = spans;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out += &rest[..open];
        let fields = &rest[open..close];
        if !fields.starts_with("{endpoint=") {
            out += fields;
        }
        rest = &rest[close..];
    }
    out + rest
}

fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "ns" => n * 1e-9,
        "µs" | "us" => n * 1e-6,
        "ms" => n * 1e-3,
        "s" => n,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}
