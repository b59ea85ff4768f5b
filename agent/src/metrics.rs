//! The agent's metrics in Prometheus text format (`GET /v1/metrics`, `--metrics-listen`):
//! datapath counters read from the pinned maps at scrape time (drops by reason and direction,
//! forwarded packets, policy decisions by the policy that made them, policy-map fill), the
//! writer's regeneration latency, and the flow exporter's counts. Nothing is counted per packet
//! for them beyond the datapath's own counters.

use crate::flows::export::ExportStats;
use crate::snapshot::Snapshot;
use codegen::layout::{
    MetricsValue, PolicyKey, PolicyValue, DIR_INGRESS, RULE_AUDIT_BIT, RULE_NONE,
};
use compiler::flow::PolicyRef;
use runtime_loader::layout::NodeLayout;
use runtime_loader::RawMap;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the regeneration histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram updated without locks.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// What the agent counts itself; the rest is read at scrape time.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    /// Writes that produced a new policy revision or enforced pending changes.
    pub regeneration: Histogram,
    /// The flow exporter's counts, once it runs.
    pub export: OnceLock<Arc<ExportStats>>,
    /// Learned `toFQDNs` addresses.
    pub fqdn: crate::fqdn::FqdnCounters,
    /// Programs verified ahead for new endpoints, with a datapath.
    pub programs: OnceLock<Arc<crate::program_pool::PoolStats>>,
    /// Endpoints the periodic datapath check found changed behind the agent's back.
    pub datapath_repairs: std::sync::atomic::AtomicU64,
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn direction(d: u8) -> &'static str {
    if d == DIR_INGRESS {
        "INGRESS"
    } else {
        "EGRESS"
    }
}

/// Per endpoint: (packets, bytes) by (direction, reason) from `cp_metrics`, summed over CPUs.
fn counters(pin: &Path) -> BTreeMap<(u8, u8), (u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(map) = RawMap::open_pinned(pin) else {
        return out;
    };
    for dir in [0u8, 1] {
        for reason in codegen::reasons::DROP_REASONS.iter().map(|r| r.0) {
            let idx = u32::from(dir) * 256 + u32::from(reason);
            let Ok(Some(v)) = map.lookup(&idx.to_ne_bytes()) else {
                continue;
            };
            let (p, b) = map
                .cpu_values(&v)
                .filter_map(MetricsValue::from_bytes)
                .fold((0, 0), |(p, b), m| (p + m.packets, b + m.bytes));
            if p > 0 {
                let e = out.entry((dir, reason)).or_insert((0, 0));
                e.0 += p;
                e.1 += b;
            }
        }
    }
    out
}

/// Renders every metric. `layout` is the node's pin layout (`None` without a datapath).
pub fn render(
    m: &AgentMetrics,
    snap: &Snapshot,
    layout: Option<&NodeLayout>,
    proxy: Option<[(l7proxy::Outcome, u64); 5]>,
) -> String {
    let mut out = String::new();
    let mut drops: BTreeMap<(u8, u8), (u64, u64)> = BTreeMap::new();
    // (direction, verdict, rule) → packets.
    let mut decisions: BTreeMap<(u8, u8, u32), u64> = BTreeMap::new();
    let mut fill: Vec<(u16, usize, u32)> = Vec::new();
    for (id, ep) in snap.endpoints.iter().map(|(id, v)| (id, &v.status)) {
        let Some(layout) = layout else { break };
        let path = |name| layout.endpoint_map_path(*id, name).ok();
        if let Some(pin) = path(codegen::maps::METRICS.name) {
            for (k, (p, b)) in counters(&pin) {
                let e = drops.entry(k).or_insert((0, 0));
                e.0 += p;
                e.1 += b;
            }
        }
        let policy = path(codegen::maps::POLICY.name).and_then(|p| RawMap::open_pinned(&p).ok());
        if let Some(map) = policy {
            fill.push((*id, ep.policy_entries, map.max_entries()));
            for (k, v) in map.entries().into_iter().flatten() {
                let (Some(k), Some(v)) = (PolicyKey::from_bytes(&k), PolicyValue::from_bytes(&v))
                else {
                    continue;
                };
                if v.packets > 0 {
                    *decisions
                        .entry((k.dir_flags & 1, v.verdict, v.rule_id))
                        .or_default() += v.packets;
                }
            }
        }
    }
    header(
        &mut out,
        "cilium_drop_count_total",
        "Packets dropped by the datapath, by reason and direction.",
        "counter",
    );
    let reason = |r: u8| codegen::reasons::name(r).unwrap_or("unknown");
    for ((d, r), (p, _)) in drops.iter().filter(|(k, _)| k.1 != 0) {
        let _ = writeln!(
            out,
            "cilium_drop_count_total{{reason=\"{}\",direction=\"{}\"}} {p}",
            esc(reason(*r)),
            direction(*d)
        );
    }
    header(
        &mut out,
        "cilium_drop_bytes_total",
        "Bytes of the packets dropped by the datapath, by reason and direction.",
        "counter",
    );
    for ((d, r), (_, b)) in drops.iter().filter(|(k, _)| k.1 != 0) {
        let _ = writeln!(
            out,
            "cilium_drop_bytes_total{{reason=\"{}\",direction=\"{}\"}} {b}",
            esc(reason(*r)),
            direction(*d)
        );
    }
    header(
        &mut out,
        "cilium_forward_count_total",
        "Packets the endpoints' programs passed, by direction.",
        "counter",
    );
    for ((d, _), (p, _)) in drops.iter().filter(|(k, _)| k.1 == 0) {
        let _ = writeln!(
            out,
            "cilium_forward_count_total{{direction=\"{}\"}} {p}",
            direction(*d)
        );
    }
    render_decisions(&mut out, &decisions, snap);
    header(
        &mut out,
        "cilium_policy_map_entries",
        "Entries in each endpoint's policy map.",
        "gauge",
    );
    for (id, n, _) in &fill {
        let _ = writeln!(out, "cilium_policy_map_entries{{endpoint=\"{id}\"}} {n}");
    }
    header(
        &mut out,
        "cilium_policy_map_capacity",
        "Capacity of each endpoint's policy map (a change needing more is refused).",
        "gauge",
    );
    for (id, _, max) in &fill {
        let _ = writeln!(out, "cilium_policy_map_capacity{{endpoint=\"{id}\"}} {max}");
    }
    header(
        &mut out,
        "cilium_endpoint_count",
        "Endpoints the agent manages.",
        "gauge",
    );
    let _ = writeln!(out, "cilium_endpoint_count {}", snap.endpoints.len());
    header(
        &mut out,
        "cilium_policy_revision",
        "The policy revision the agent enforces.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "cilium_policy_revision {}",
        snap.healthz.policy_revision
    );
    m.regeneration.render(
        &mut out,
        "cilium_endpoint_regeneration_time_stats_seconds",
        "Duration of the writes that recomputed and enforced policy.",
    );
    if let Some(counts) = proxy {
        header(
            &mut out,
            "cilium_policy_proxy_requests_total",
            "HTTP requests the L7 proxy judged, and connections it closed before HTTP, by outcome.",
            "counter",
        );
        for (o, n) in counts {
            let _ = writeln!(
                out,
                "cilium_policy_proxy_requests_total{{outcome=\"{}\"}} {n}",
                o.name()
            );
        }
    }
    render_fqdn(&mut out, &m.fqdn, snap.fqdn_learned);
    let name = "cilium_policy_datapath_repairs_total";
    header(
        &mut out,
        name,
        "Endpoints whose attached programs or pins the periodic check (--datapath-check-interval) found changed behind the agent's back, and repaired.",
        "counter",
    );
    let _ = writeln!(out, "{name} {}", m.datapath_repairs.load(Ordering::Relaxed));
    if let Some(p) = m.programs.get() {
        render_programs(&mut out, p);
    }
    if let Some(x) = m.export.get() {
        header(
            &mut out,
            "cilium_policy_flow_export_written_total",
            "Flows written by the flow exporter.",
            "counter",
        );
        let _ = writeln!(
            out,
            "cilium_policy_flow_export_written_total {}",
            x.written.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "cilium_policy_flow_export_lost_total",
            "Flows the exporter lost (it fell behind, or a write failed).",
            "counter",
        );
        let _ = writeln!(
            out,
            "cilium_policy_flow_export_lost_total {}",
            x.lost.load(Ordering::Relaxed)
        );
    }
    out
}

/// New endpoints by where their programs were verified, and the programs verified ahead now.
fn render_programs(out: &mut String, p: &crate::program_pool::PoolStats) {
    let name = "cilium_policy_endpoint_program_loads_total";
    header(
        out,
        name,
        "New endpoints by when their programs went through the verifier: ahead (--spare-programs) or when the endpoint was created.",
        "counter",
    );
    for (when, c) in [("ahead", &p.ahead), ("at_create", &p.at_create)] {
        let _ = writeln!(
            out,
            "{name}{{verified=\"{when}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    header(
        out,
        "cilium_policy_spare_programs",
        "Endpoint programs verified ahead and ready for new endpoints.",
        "gauge",
    );
    let _ = writeln!(out, "cilium_policy_spare_programs {}", p.ready());
}

/// The learned `toFQDNs` addresses now, and the counts of learning and expiring them.
fn render_fqdn(out: &mut String, c: &crate::fqdn::FqdnCounters, now: usize) {
    header(
        out,
        "cilium_policy_fqdn_addresses",
        "Addresses learned from DNS answers for toFQDNs.",
        "gauge",
    );
    let _ = writeln!(out, "cilium_policy_fqdn_addresses {now}");
    for (name, help, v) in [
        ("learned", "Addresses learned from allowed DNS answers.", &c.learned),
        ("refused", "Addresses not learned because the cache was full (--tofqdns-max-ips); their traffic stays denied.", &c.refused),
        ("expired", "Learned addresses forgotten at their expiry.", &c.expired),
        ("late", "DNS answers relayed before their addresses were enforced (the proxy's wait ran out).", &c.late),
    ] {
        let metric = format!("cilium_policy_fqdn_{name}_total");
        header(out, &metric, help, "counter");
        let _ = writeln!(out, "{metric} {}", v.load(Ordering::Relaxed));
    }
}

/// `cilium_policy_verdict_total`: policy decisions (new connections) by direction, verdict
/// and the policy of the entry that decided.
fn render_decisions(out: &mut String, decisions: &BTreeMap<(u8, u8, u32), u64>, snap: &Snapshot) {
    header(
        out,
        "cilium_policy_verdict_total",
        "Policy decisions of new connections, by direction, verdict and deciding policy.",
        "counter",
    );
    let rev = snap.healthz.policy_revision;
    let mut merged: BTreeMap<(u8, &'static str, String, String, String), u64> = BTreeMap::new();
    for ((dir, verdict, rule), n) in decisions {
        let audit = *rule != RULE_NONE && rule & RULE_AUDIT_BIT != 0;
        let rule = &(rule & !RULE_AUDIT_BIT);
        let verdict = match *verdict {
            _ if audit => "audit",
            codegen::layout::VERDICT_ALLOW => "allow",
            codegen::layout::VERDICT_DENY => "deny",
            codegen::layout::VERDICT_REDIRECT => "redirect",
            _ => continue,
        };
        let r = snap
            .rules
            .get(ir::RuleId(*rule))
            .map_or_else(PolicyRef::default, |r| r.policy_at(rev));
        *merged
            .entry((*dir, verdict, r.kind, r.namespace, r.name))
            .or_default() += n;
    }
    for ((dir, verdict, kind, ns, name), n) in merged {
        let _ = writeln!(
            out,
            "cilium_policy_verdict_total{{direction=\"{}\",verdict=\"{verdict}\",policy_kind=\"{}\",policy_namespace=\"{}\",policy_name=\"{}\"}} {n}",
            direction(dir),
            esc(&kind),
            esc(&ns),
            esc(&name)
        );
    }
}
