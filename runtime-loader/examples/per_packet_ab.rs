//! Every per_packet row, measured in one process on the datapaths that `per_packet_pin` of two
//! (or more) source trees pinned: the harness, its packets and its clock are the same for every
//! variant, so what differs is only the kernel objects (programs and the maps they hold), where
//! two benchmark binaries also differ in their own code and layout and drift apart by more
//! than 5 % between sets of runs (Documentation/performance.md). Needs root.
//!
//! `per_packet_ab [--rows=SUBSTRING,...] ROUNDS NAME=DIR[,DIR...] NAME=DIR[,DIR...] ...`: the
//! k-th directories of the variants form the k-th pair (datapaths built one after the other, so
//! each pair shares where the kernel happened to place things); `--rows` keeps the rows whose
//! name contains one of the substrings. Every round measures, for every pair, every row on
//! each variant in turn (the order alternating with round and pair), then prints per row the
//! median time of each variant and the median of its per-pair ratios to the first variant with
//! a bootstrap 95 % interval. Rows (named as in `benches/per_packet.rs`):
//! - repeated packets (repeat 200,000, wall clock of the call over the runs, median of 5):
//!   the floor, an established connection's ACK (a flow-cache hit, or a CT lookup without the
//!   cache), the denied new connection (deny slot), denied by a deny entry, and with drop
//!   events on, unread or drained by a reader thread on the other CPU;
//! - single runs (kernel-measured, mean of 20,000, median of 3): the floor, the ACK, the
//!   denied packet, allowed new connections (a distinct tuple each, a CT insert each);
//! - the ACKs of 4,096 connections round-robin (every run misses the flow cache's slot), mean
//!   of 8,192 runs, median of 5.
//!
//! Every round opens new connections (fresh tuples), as the LRU tables may have evicted the
//! previous round's under the allowed new connections' inserts.

#[path = "../benches/support/datapath.rs"]
mod datapath;
#[path = "../benches/support/drain.rs"]
mod drain;
#[path = "../benches/support/pinned.rs"]
mod pinned;
#[path = "../benches/support/stats.rs"]
mod stats;

use aya::programs::SchedClassifier;
use datapath::{new_allowed, open, DENY_ENTRY_PORT, FLOWS};
use drain::{pin_to_cpu, Drain};
use pinned::{CONFIGS, EVENTS, FLOOR, PROG};
use runtime_loader::packet::PacketSpec;
use runtime_loader::test_run;
use stats::{interval, median};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

const REPEAT: u32 = 200_000;
const SINGLE_RUNS: usize = 20_000;

/// What a row sends.
#[derive(Clone, Copy)]
enum Packet {
    /// An established connection's ACK (opened for the row).
    Ack,
    /// The new connection policy denies by default.
    Denied,
    /// The new connection the deny entry denies.
    DenyEntry,
}

#[derive(Clone, Copy)]
enum Kind {
    Repeat(Packet),
    Single(Packet),
    Flows,
    NewAllowed,
    /// The denied packet repeated while a reader drains the ring buffer.
    Drained,
}

struct Row {
    name: String,
    config: &'static str,
    kind: Kind,
}

fn rows() -> Vec<Row> {
    let row = |name: String, config, kind| Row { name, config, kind };
    let mut rows = vec![
        row(
            "empty_program_floor".into(),
            FLOOR,
            Kind::Repeat(Packet::Ack),
        ),
        row(
            "empty_program_floor_repeat_1".into(),
            FLOOR,
            Kind::Single(Packet::Ack),
        ),
    ];
    for (label, config) in [
        ("10_entries_no_flow_cache", "no_cache_10"),
        ("10_entries", "e10"),
        ("ipv6_10_entries", "v6_10"),
        ("ipv6_10_entries_no_flow_cache", "v6_10_no_cache"),
        ("10000_entries", "e10000"),
    ] {
        rows.push(row(
            format!("established_{label}"),
            config,
            Kind::Repeat(Packet::Ack),
        ));
        if !label.contains("ipv6") {
            rows.push(row(
                format!("established_{label}_repeat_1"),
                config,
                Kind::Single(Packet::Ack),
            ));
            rows.push(row(
                format!("established_{FLOWS}_flows_{label}_repeat_1"),
                config,
                Kind::Flows,
            ));
        }
    }
    for n in [10, 10_000] {
        let (config, events) = match n {
            10 => ("e10", "e10_events"),
            _ => ("e10000", "e10000_events"),
        };
        let mut push = |name: String, config, kind| rows.push(row(name, config, kind));
        push(
            format!("new_denied_{n}_entries"),
            config,
            Kind::Repeat(Packet::Denied),
        );
        push(
            format!("new_denied_by_deny_entry_{n}_entries"),
            config,
            Kind::Repeat(Packet::DenyEntry),
        );
        push(
            format!("new_denied_{n}_entries_events_on_unread"),
            events,
            Kind::Repeat(Packet::Denied),
        );
        push(
            format!("new_denied_{n}_entries_events_on_drained"),
            events,
            Kind::Drained,
        );
        push(
            format!("new_allowed_{n}_entries_repeat_1"),
            config,
            Kind::NewAllowed,
        );
        push(
            format!("new_denied_{n}_entries_repeat_1"),
            config,
            Kind::Single(Packet::Denied),
        );
    }
    rows
}

/// One variant's pinned datapaths, and the tuples used so far on each.
struct Set {
    dir: PathBuf,
    progs: BTreeMap<&'static str, SchedClassifier>,
    /// Connections opened per configuration (each its own source port).
    opened: BTreeMap<&'static str, u16>,
    /// Allowed new connections sent per configuration.
    news: BTreeMap<&'static str, u64>,
}

impl Set {
    fn open(dir: &Path) -> Set {
        let names = std::iter::once(FLOOR).chain(CONFIGS.iter().map(|c| c.name));
        let progs = names
            .map(|name| {
                let at = dir.join(name).join(PROG);
                let prog = SchedClassifier::from_pin(&at)
                    .unwrap_or_else(|e| panic!("{}: {e} (run per_packet_pin first)", at.display()));
                (name, prog)
            })
            .collect();
        Set {
            dir: dir.into(),
            progs,
            opened: BTreeMap::new(),
            news: BTreeMap::new(),
        }
    }

    /// A packet of `config`; an ACK opens a new connection first.
    fn packet(&mut self, config: &'static str, packet: Packet) -> Vec<u8> {
        let ipv6 = config.starts_with("v6");
        let (peer, ep): (IpAddr, IpAddr) = match ipv6 {
            true => ("fd01::100".parse().unwrap(), "fd00::1".parse().unwrap()),
            false => ("10.1.1.0".parse().unwrap(), "10.0.0.1".parse().unwrap()),
        };
        match packet {
            Packet::Ack => {
                let n = self.opened.entry(config).or_default();
                *n += 1;
                let syn = PacketSpec::new(peer, ep, 6, 30_000 + *n, 1000);
                open(&self.progs[config], &syn).build()
            }
            Packet::Denied => datapath::denied().build(),
            Packet::DenyEntry => PacketSpec {
                dport: DENY_ENTRY_PORT,
                ..datapath::denied()
            }
            .build(),
        }
    }

    /// The ACKs of FLOWS new connections of `config` (a port block per round, 20 rounds).
    fn flows(&mut self, config: &'static str, round: usize) -> Vec<Vec<u8>> {
        let base = 20_000 + (round / 10 % 2) as u16 * FLOWS;
        let prog = &self.progs[config];
        (0..FLOWS)
            .map(|i| {
                let syn = PacketSpec::new(
                    "10.1.1.0".parse().unwrap(),
                    "10.0.0.1".parse().unwrap(),
                    6,
                    base + i,
                    1000 + (round % 10) as u16,
                );
                open(prog, &syn).build()
            })
            .collect()
    }

    fn measure(&mut self, row: &Row, round: usize) -> f64 {
        let pass = !matches!(
            row.kind,
            Kind::Repeat(Packet::Denied | Packet::DenyEntry)
                | Kind::Single(Packet::Denied | Packet::DenyEntry)
                | Kind::Drained
        );
        match row.kind {
            Kind::Repeat(p) => {
                let frame = self.packet(row.config, p);
                repeated(&self.progs[row.config], &frame, pass)
            }
            Kind::Drained => {
                let frame = self.packet(row.config, Packet::Denied);
                let reader = Drain::start(&self.dir.join(row.config).join(EVENTS));
                let ns = repeated(&self.progs[row.config], &frame, pass);
                reader.stop();
                ns
            }
            Kind::Single(p) => {
                let frame = [self.packet(row.config, p)];
                singles(&self.progs[row.config], &frame, pass, SINGLE_RUNS, 3)
            }
            Kind::Flows => {
                let acks = self.flows(row.config, round);
                let prog = &self.progs[row.config];
                // Once round first: every slot then holds another connection.
                singles(prog, &acks, true, acks.len(), 1);
                singles(prog, &acks, true, 2 * acks.len(), 5)
            }
            Kind::NewAllowed => {
                let from = self.news.entry(row.config).or_default();
                let frames: Vec<Vec<u8>> = (*from..*from + 2 * SINGLE_RUNS as u64)
                    .map(|i| new_allowed(i).build())
                    .collect();
                *from += frames.len() as u64;
                singles(&self.progs[row.config], &frames, true, SINGLE_RUNS, 2)
            }
        }
    }
}

/// ns per run of `frame` repeated REPEAT times in one call, by the wall clock around the call
/// (the kernel's own figure is whole ns), median of 5.
fn repeated(prog: &SchedClassifier, frame: &[u8], pass: bool) -> f64 {
    let mut xs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let r = test_run(prog, frame, REPEAT).unwrap();
            let ns = t.elapsed().as_nanos() as f64 / f64::from(REPEAT);
            assert_eq!(r.passed(), pass);
            ns
        })
        .collect();
    median(&mut xs)
}

/// The median over `samples` of the mean kernel-measured time of `runs` single runs going
/// through `frames` in order (each frame at most once per call unless `frames` is shorter).
fn singles(
    prog: &SchedClassifier,
    frames: &[Vec<u8>],
    pass: bool,
    runs: usize,
    samples: usize,
) -> f64 {
    let mut next = 0;
    let mut means: Vec<f64> = (0..samples)
        .map(|_| {
            let total: u128 = (0..runs)
                .map(|_| {
                    let r = test_run(prog, &frames[next % frames.len()], 1).unwrap();
                    assert_eq!(r.passed(), pass, "run {next}");
                    next += 1;
                    r.per_run.as_nanos()
                })
                .sum();
            total as f64 / runs as f64
        })
        .collect();
    median(&mut means)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let filter = match args.first().and_then(|a| a.strip_prefix("--rows=")) {
        Some(f) => {
            let f = f.to_string();
            args.remove(0);
            f
        }
        None => String::new(),
    };
    let (Some(rounds), true) = (
        args.first().and_then(|a| a.parse::<usize>().ok()),
        args.len() >= 3,
    ) else {
        eprintln!("usage: per_packet_ab [--rows=SUBSTRING,...] ROUNDS NAME=DIR[,DIR...] NAME=DIR[,DIR...] ...");
        std::process::exit(2);
    };
    assert!(rounds <= 20, "at most 20 rounds (the flows' port blocks)");
    pin_to_cpu(1);
    let mut variants: Vec<(String, Vec<Set>)> = args[1..]
        .iter()
        .map(|a| {
            let (name, dirs) = a.split_once('=').expect("NAME=DIR[,DIR...]");
            let sets = dirs.split(',').map(|d| Set::open(Path::new(d))).collect();
            (name.to_string(), sets)
        })
        .collect();
    // PER_PACKET_AB_RAW=1: every figure on stderr (round, pair, variant, row, ns), tab-separated.
    let raw = std::env::var_os("PER_PACKET_AB_RAW").is_some();
    let pairs = variants.iter().map(|(_, s)| s.len()).min().unwrap();
    let rows: Vec<Row> = rows()
        .into_iter()
        .filter(|r| filter.split(',').any(|f| r.name.contains(f)))
        .collect();
    // results[variant][row]: one figure per (round, pair).
    let mut results = vec![vec![Vec::new(); rows.len()]; variants.len()];
    for round in 0..rounds {
        for k in 0..pairs {
            let mut order: Vec<usize> = (0..variants.len()).collect();
            order.rotate_left((round + k) % variants.len());
            for (r, row) in rows.iter().enumerate() {
                for &v in &order {
                    let ns = variants[v].1[k].measure(row, round);
                    if raw {
                        eprintln!(
                            "raw\t{round}\t{k}\t{}\t{}\t{ns:.2}",
                            variants[v].0, row.name
                        );
                    }
                    results[v][r].push(ns);
                }
            }
            eprintln!("round {round} pair {k} done");
        }
    }
    println!(
        "| row | {} |",
        variants
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for (r, row) in rows.iter().enumerate() {
        let cells: Vec<String> = (0..variants.len())
            .map(|v| {
                let ns = median(&mut results[v][r].clone());
                if v == 0 {
                    return format!("{ns:.1}");
                }
                let ratios: Vec<f64> = results[v][r]
                    .iter()
                    .zip(&results[0][r])
                    .map(|(a, b)| a / b)
                    .collect();
                let (m, lo, hi) = interval(&ratios);
                format!("{ns:.1} ({m:.3}, {lo:.3}–{hi:.3})")
            })
            .collect();
        println!("| {} | {} |", row.name, cells.join(" | "));
    }
}
