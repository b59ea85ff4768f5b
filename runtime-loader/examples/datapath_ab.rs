//! In-process A/B of endpoint datapath builds on the packets that miss the caches, where
//! comparing two benchmark binaries cannot resolve a few per cent (Documentation/performance.md,
//! "Comparing datapath builds in one process"). Needs root.
//!
//! `datapath_ab PLACEMENTS NAME=[DEFINE,...] NAME=[DEFINE,...] ...`: each variant is the
//! endpoint template with the given macros defined (none: the template as it is; a change
//! under comparison is put behind a macro while it is measured). For each of PLACEMENTS rounds
//! every variant's datapath (10,000 policy entries, flow cache on) is built afresh, in an order
//! that rotates and reverses between rounds (the first map created in a round was measured up
//! to 4 % apart from a later one of the same code), then measured in that order:
//! - `flows`: the ACKs of 4,096 established connections round-robin (every packet misses the
//!   flow cache's slot, looks CT up and refills the slot), mean of 8,192 runs, median of 9;
//! - `denied`: a denied packet served by its deny slot, one run per call;
//! - `ack`: one established connection's ACK, a flow-cache hit, one run per call;
//! - `new`: allowed new connections (a CT insert each), one run per distinct packet.
//!
//! Prints each round, then per variant the median time and the median of its per-round ratios
//! to the first variant with a bootstrap 95 % interval.

#[path = "../benches/support/datapath.rs"]
mod datapath;

use aya::programs::SchedClassifier;
use datapath::{many_flows, new_allowed, open, Build};
use runtime_loader::test_run;

const ROWS: [&str; 4] = ["flows", "denied", "ack", "new"];

/// The median over `samples` of the mean kernel-measured time of `runs` single runs cycling
/// through `frames` (from `*next` on).
fn sample(
    prog: &SchedClassifier,
    frames: &[Vec<u8>],
    next: &mut usize,
    runs: usize,
    samples: usize,
) -> f64 {
    let mut means: Vec<f64> = (0..samples)
        .map(|_| {
            let total: u128 = (0..runs)
                .map(|_| {
                    let frame = &frames[*next % frames.len()];
                    *next += 1;
                    test_run(prog, frame, 1).unwrap().per_run.as_nanos()
                })
                .sum();
            total as f64 / runs as f64
        })
        .collect();
    median(&mut means)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The four rows of one variant's datapath.
fn measure(prog: &SchedClassifier, round: usize) -> [f64; 4] {
    let acks: Vec<Vec<u8>> = many_flows().iter().map(|s| open(prog, s).build()).collect();
    let mut next = 0;
    // Once round first: every slot then holds another connection.
    sample(prog, &acks, &mut next, acks.len(), 1);
    let flows = sample(prog, &acks, &mut next, 2 * acks.len(), 9);
    let denied = [datapath::denied().build()];
    let denied = sample(prog, &denied, &mut 0, 20_000, 5);
    let ack = sample(prog, &acks[..1], &mut 0, 20_000, 5);
    // Distinct tuples per round (the datapath is new, but the CT of a round's first variant
    // must not meet the packets of its last).
    let news: Vec<Vec<u8>> = (0..60_000u64)
        .map(|i| new_allowed(i + 60_000 * round as u64).build())
        .collect();
    let new = sample(prog, &news, &mut 0, 20_000, 3);
    [flows, denied, ack, new]
}

/// The median of `ratios` and a bootstrap 95 % interval of it (fixed seed).
fn interval(ratios: &[f64]) -> (f64, f64, f64) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut medians: Vec<f64> = (0..2000)
        .map(|_| {
            let mut pick: Vec<f64> = (0..ratios.len())
                .map(|_| ratios[(next() % ratios.len() as u64) as usize])
                .collect();
            median(&mut pick)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    (median(&mut ratios.to_vec()), medians[50], medians[1949])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(rounds), true) = (
        args.first().and_then(|a| a.parse::<usize>().ok()),
        args.len() >= 3,
    ) else {
        eprintln!("usage: datapath_ab PLACEMENTS NAME=[DEFINE,...] NAME=[DEFINE,...] ...");
        std::process::exit(2);
    };
    let variants: Vec<(String, String)> = args[1..]
        .iter()
        .map(|a| {
            let (name, defines) = a.split_once('=').unwrap_or((a, ""));
            let prelude = defines
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| format!("#define {d} 1\n"))
                .collect();
            (name.to_string(), prelude)
        })
        .collect();
    let mut results = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..variants.len()).collect();
        order.rotate_left(round % variants.len());
        if (round / variants.len()) % 2 == 1 {
            order.reverse();
        }
        let mut built: Vec<_> = (0..variants.len()).map(|_| None).collect();
        for &v in &order {
            let build = Build {
                prelude: variants[v].1.clone(),
                ..Build::default()
            };
            built[v] = Some(datapath::datapath(10_000, &build));
        }
        for &v in &order {
            let dp = built[v].as_ref().unwrap();
            let rows = measure(dp.program(ir::Direction::Ingress).unwrap(), round);
            eprintln!("round {round} {}: {rows:.1?}", variants[v].0);
            results[v].push(rows);
        }
    }
    for (v, (name, _)) in variants.iter().enumerate() {
        let line: Vec<String> = ROWS
            .iter()
            .enumerate()
            .map(|(r, row)| {
                let ratios: Vec<f64> = results[v]
                    .iter()
                    .zip(&results[0])
                    .map(|(a, b)| a[r] / b[r])
                    .collect();
                let (m, lo, hi) = interval(&ratios);
                let ns = median(&mut results[v].iter().map(|x| x[r]).collect::<Vec<_>>());
                format!("{row} {ns:.1} ns {m:.3} ({lo:.3}-{hi:.3})")
            })
            .collect();
        println!("{name}: {}", line.join(" | "));
    }
}
