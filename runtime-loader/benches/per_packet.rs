//! Per-packet cost through BPF_PROG_TEST_RUN (repeat ≥ 1e6) with 10 and 10,000 policy entries,
//! against an empty classifier (the floor). Needs root: `sudo cargo bench -p runtime-loader
//! --bench per_packet`. Packets: the ACK of an established connection (a flow-cache hit after
//! its first run; also measured on the same datapath built without the flow cache, one CT
//! lookup per packet), a new connection that policy denies, by default (no entry matches) and
//! by a deny entry (a repeated denied packet is served from its flow-cache deny slot after its
//! first run; events off, on with nobody reading the ring, and on with a reader draining it),
//! and new connections that policy allows (CT miss, ipcache, policy, CT insert). A repeated packet is established after its first run, so allowed new
//! connections are measured one run per distinct packet (repeat 1, 20,000 packets per sample)
//! against the floor measured the same way (a single run includes the kernel's timer overhead,
//! which repeat 1e6 amortises). Flow-cache misses are measured the same way: the ACKs of 4,096
//! established connections, round-robin, evict each other from the cache's slots, so every
//! run takes the CT lookup and refills a slot; compare with the single connection's ACK at
//! repeat 1 (a hit every run). IPv6 established packets are measured on a dual-stack endpoint.
//!
//! The rows whose packets miss the caches (4,096 connections round-robin, allowed new
//! connections) depend on where the kernel happened to place the datapath's maps: between runs
//! of one binary their figures spread by ±15 %, more than the differences a change makes. The
//! `placement{k}_*` rows measure them again on PLACEMENTS datapaths built afresh (new maps
//! each), one row per datapath; the median over the placements of a run is a figure for the
//! code rather than for one placement (Documentation/performance.md).

mod support {
    pub mod datapath;
    pub mod drain;
}

use aya::programs::SchedClassifier;
use codegen::{maps, MapSizes};
use criterion::{criterion_group, criterion_main, Criterion};
use ir::Direction;
use runtime_loader::load::default_state;
use runtime_loader::packet::PacketSpec;
use runtime_loader::{test_run, Datapath};
use std::time::Duration;
use support::datapath::{
    many_flows, new_allowed, open, quiet_state, Build, DENY_ENTRY_PORT, FLOWS,
};

const REPEAT: u32 = 1_000_000;

/// The endpoint's datapath with `entries` policy entries, built with `sizes`; dual-stack with
/// `ipv6` (fd00::1), else IPv4 only.
fn datapath(entries: u32, sizes: &MapSizes, ipv6: bool) -> Datapath {
    support::datapath::datapath(
        entries,
        &Build {
            sizes: *sizes,
            ipv6,
            ..Build::default()
        },
    )
}

fn measure(c: &mut Criterion, name: &str, prog: &SchedClassifier, pkt: &PacketSpec) {
    let frame = pkt.build();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let repeat = REPEAT.max(iters.min(u32::MAX as u64) as u32);
            let r = test_run(prog, &frame, repeat).unwrap();
            r.per_run * iters as u32
        })
    });
}

const BATCH: u32 = 20_000;

/// One run per call (repeat 1) of `frame(i)` for a counter that never repeats; every run must
/// pass (`pass`) or be dropped.
fn measure_each(
    c: &mut Criterion,
    name: &str,
    prog: &SchedClassifier,
    pass: bool,
    mut frame: impl FnMut(u64) -> Vec<u8>,
) {
    let mut n = 0u64;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..BATCH {
                let r = test_run(prog, &frame(n), 1).unwrap();
                assert_eq!(r.passed(), pass, "{name}: packet {n}");
                total += r.per_run;
                n += 1;
            }
            total.mul_f64(iters as f64 / f64::from(BATCH))
        })
    });
}

/// Established packets: one connection's ACK (repeat 1e6 and repeat 1), and the ACKs of FLOWS
/// connections round-robin (repeat 1).
fn measure_established(c: &mut Criterion, label: &str, prog: &SchedClassifier, syn: &PacketSpec) {
    let ack = open(prog, syn);
    measure(c, &format!("per_packet_established_{label}"), prog, &ack);
    let ack_frame = ack.build();
    measure_each(
        c,
        &format!("per_packet_established_{label}_repeat_1"),
        prog,
        true,
        |_| ack_frame.clone(),
    );
    measure_flows(c, "", label, prog);
}

/// The ACKs of FLOWS connections opened on `prog`, round-robin (repeat 1); the row's name
/// starts with `prefix`.
fn measure_flows(c: &mut Criterion, prefix: &str, label: &str, prog: &SchedClassifier) {
    let flows: Vec<Vec<u8>> = many_flows().iter().map(|s| open(prog, s).build()).collect();
    measure_each(
        c,
        &format!("per_packet_{prefix}established_{FLOWS}_flows_{label}_repeat_1"),
        prog,
        true,
        |i| flows[(i % flows.len() as u64) as usize].clone(),
    );
}

/// The denied packet with drop events on and delivered: the ring buffer is pinned in a private
/// bpffs and drained by a reader thread (the other core) for the whole measurement, as
/// `monitor` does (`support::drain`); prints how many events the reader got.
fn measure_events_drained(c: &mut Criterion, entries: u32, denied: &PacketSpec) {
    let fs = runtime_loader::testkit::PrivateBpffs::new();
    let pin = fs.path.join(maps::EVENTS.name);
    let dp = support::datapath::datapath(
        entries,
        &Build {
            map_pins: vec![(maps::EVENTS.name, pin.clone())],
            ..Build::default()
        },
    );
    dp.set_state(&default_state()).unwrap();
    let reader = support::drain::Drain::start(&pin);
    let prog = dp.program(Direction::Ingress).unwrap();
    measure(
        c,
        &format!("per_packet_new_denied_{entries}_entries_events_on_drained"),
        prog,
        denied,
    );
    let n = reader.stop();
    eprintln!("events_on_drained: the reader got {n} drop events");
}

/// Datapaths built afresh for the `placement{k}_*` rows.
const PLACEMENTS: usize = 6;

/// The cache-missing rows again, on each of PLACEMENTS datapaths built afresh one after the
/// other (10 entries without the flow cache; 10 and 10,000 entries with it); each keeps its
/// maps until its rows are measured, so the next one's maps land elsewhere.
fn measure_placements(c: &mut Criterion, no_cache_sizes: &MapSizes) {
    for k in 0..PLACEMENTS {
        let prefix = format!("placement{k}_");
        let no_cache = datapath(10, no_cache_sizes, false);
        let prog = no_cache.program(Direction::Ingress).unwrap();
        measure_flows(c, &prefix, "10_entries_no_flow_cache", prog);
        for n in [10u32, 10_000] {
            let dp = datapath(n, &MapSizes::default(), false);
            let prog = dp.program(Direction::Ingress).unwrap();
            measure_flows(c, &prefix, &format!("{n}_entries"), prog);
            measure_each(
                c,
                &format!("per_packet_{prefix}new_allowed_{n}_entries_repeat_1"),
                prog,
                true,
                |i| new_allowed(i).build(),
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping per_packet benchmarks: need root (BPF)");
        return;
    }
    let floor = support::datapath::floor();
    let prog: &SchedClassifier = floor
        .program("cil_to_container")
        .unwrap()
        .try_into()
        .unwrap();
    let syn = PacketSpec::new(
        "10.1.1.0".parse().unwrap(),
        "10.0.0.1".parse().unwrap(),
        6,
        40000,
        1000,
    );
    let denied = support::datapath::denied();
    let syn_frame = syn.build();
    measure(c, "per_packet_empty_program_floor", prog, &syn);
    measure_each(
        c,
        "per_packet_empty_program_floor_repeat_1",
        prog,
        true,
        |_| syn_frame.clone(),
    );
    // The same datapath without the flow cache: every established packet looks CT up.
    let no_cache_sizes = MapSizes {
        flow_cache: 0,
        ..MapSizes::default()
    };
    let no_cache = datapath(10, &no_cache_sizes, false);
    let prog = no_cache.program(Direction::Ingress).unwrap();
    measure_established(c, "10_entries_no_flow_cache", prog, &syn);
    for n in [10u32, 10_000] {
        let dp = datapath(n, &MapSizes::default(), false);
        let prog = dp.program(Direction::Ingress).unwrap();
        measure_established(c, &format!("{n}_entries"), prog, &syn);
        measure(
            c,
            &format!("per_packet_new_denied_{n}_entries"),
            prog,
            &denied,
        );
        let deny_entry = PacketSpec {
            dport: DENY_ENTRY_PORT,
            ..denied.clone()
        };
        measure(
            c,
            &format!("per_packet_new_denied_by_deny_entry_{n}_entries"),
            prog,
            &deny_entry,
        );
        // With drop events on and nobody reading the ring buffer (full after its first few
        // thousand runs: every later reserve fails).
        dp.set_state(&default_state()).unwrap();
        measure(
            c,
            &format!("per_packet_new_denied_{n}_entries_events_on_unread"),
            prog,
            &denied,
        );
        dp.set_state(&quiet_state()).unwrap();
        measure_events_drained(c, n, &denied);
        measure_each(
            c,
            &format!("per_packet_new_allowed_{n}_entries_repeat_1"),
            prog,
            true,
            |i| new_allowed(i).build(),
        );
        // The denied packet measured the same way: what one run per packet adds to a packet
        // that creates no state (a cold start for every run).
        let denied_frame = denied.build();
        measure_each(
            c,
            &format!("per_packet_new_denied_{n}_entries_repeat_1"),
            prog,
            false,
            |_| denied_frame.clone(),
        );
    }
    // IPv6 (40-byte CT key) on a dual-stack endpoint, with and without the flow cache.
    let syn6 = PacketSpec::new(
        "fd01::100".parse().unwrap(),
        "fd00::1".parse().unwrap(),
        6,
        40000,
        1000,
    );
    for (label, sizes) in [
        ("ipv6_10_entries", MapSizes::default()),
        ("ipv6_10_entries_no_flow_cache", no_cache_sizes),
    ] {
        let dp = datapath(10, &sizes, true);
        let prog = dp.program(Direction::Ingress).unwrap();
        let ack = open(prog, &syn6);
        measure(c, &format!("per_packet_established_{label}"), prog, &ack);
    }
    measure_placements(c, &no_cache_sizes);
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5)); targets = bench }
criterion_main!(benches);
