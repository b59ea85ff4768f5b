//! `cilium-policy compile`: per-endpoint BPF objects, headers and map images from policy files.
//!
//! front end → cluster (identities, ipcache) → per-endpoint map state → codegen. Writes
//! `OUTDIR/manifest.json`, `node_config.h`, `ipcache.img`, `ipcache_host.img`, `rules.json` and one folder per
//! endpoint; `--emit ir|c|maps` prints the IR, the generated headers or the map entries instead.

use codegen::entries::EndpointEntries;
use codegen::generate::check_sizes;
use codegen::{headers, output, EndpointConfig, Features, Generator, MapSizes};
use compiler::cluster::{Cluster, ClusterConfig};
use compiler::policy::PolicyEngine;
use ir::EndpointPolicy;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The IR text form of the policies.
    Ir,
    /// The generated C headers (node, then each endpoint).
    C,
    /// Every endpoint's policy-map entries and the ipcache.
    Maps,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Policy and inventory files or directories (*.yaml, *.yml, *.json); `-` for stdin.
    #[arg(short = 'f', long = "file", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output directory (required unless --emit).
    #[arg(short = 'o', long = "output", required_unless_present = "emit")]
    pub output: Option<PathBuf>,
    /// Print this to stdout instead of writing the output directory.
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
    /// Entries of each endpoint's policy map; endpoints needing more are refused.
    #[arg(long, default_value_t = 16_384)]
    pub policy_map_size: u32,
    /// Flow-cache slots per CPU and address family in front of connection tracking (a power
    /// of two up to 65536; 0 compiles the flow cache out).
    #[arg(long, default_value_t = codegen::MapSizes::default().flow_cache,
          value_parser = super::parse_flow_cache_slots)]
    pub flow_cache_slots: u32,
    /// Do not remember denied new connections in the flow cache (its deny slots use BPF
    /// atomics with fetch, Linux 5.12+): for nodes with Linux 5.10 or 5.11.
    #[arg(long)]
    pub no_deny_cache: bool,
    #[command(flatten)]
    pub ct: super::ct_size::CtSizeArgs,
    /// Object cache directory (default: OUTDIR/.cache).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// The node to compile for, as the agent's `--node`: only its endpoints (pods without
    /// `spec.nodeName` or naming it) are compiled with its view (its `Node` addresses are
    /// `host`, with its labels; other nodes' addresses their node identities).
    #[arg(long, default_value = compiler::cluster::DEFAULT_NODE)]
    pub node: String,
}

/// An endpoint with its id, configuration and map state.
struct Planned {
    config: EndpointConfig,
    policy: EndpointPolicy,
}

fn plan(cluster: &Cluster, engine: &PolicyEngine) -> Vec<Planned> {
    let policies = engine.all_policies();
    let local = cluster.config.local_node.as_str();
    let mut eps: Vec<_> = cluster
        .endpoints()
        .filter(|ep| cluster.node_of(&ep.name) == local)
        .collect();
    eps.sort_by(|a, b| a.name.cmp(&b.name));
    eps.into_iter()
        .enumerate()
        .filter_map(|(i, ep)| {
            let policy = policies.get(&ep.name)?.clone();
            let v4 = ep.ips.iter().find_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                _ => None,
            });
            let v6 = ep.ips.iter().find_map(|a| match a {
                IpAddr::V6(a) => Some(*a),
                _ => None,
            });
            let config = EndpointConfig {
                id: i as u32 + 1,
                name: ep.name.clone(),
                identity: ep.identity,
                ipv4: v4,
                ipv6: v6,
            };
            Some(Planned { config, policy })
        })
        .collect()
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let front = compiler::front::load(&args.files).map_err(|e| miette::miette!("{e}"))?;
    if front.has_errors() {
        for d in front.diagnostics.iter().filter(|d| d.is_error()) {
            eprintln!("{d}");
        }
        eprintln!(
            "error: the policy files have errors; nothing was compiled (see `cilium-policy lint`)"
        );
        return Ok(ExitCode::from(1));
    }
    let set = &front.policy;
    let mut stdout = std::io::stdout().lock();
    let out = |w: &mut std::io::StdoutLock, s: &str| {
        w.write_all(s.as_bytes())
            .map_err(|e| miette::miette!("writing to stdout: {e}"))
    };
    if args.emit == Some(Emit::Ir) {
        out(&mut stdout, &ir::text::render(set))?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = ClusterConfig {
        local_node: args.node.clone(),
        ..ClusterConfig::default()
    };
    let cluster =
        Cluster::build(&front.inventory, set, config).map_err(|e| miette::miette!("{e}"))?;
    let engine = PolicyEngine::new(set.clone(), cluster.clone());
    let planned = plan(&cluster, &engine);
    let (ct_tcp, ct_any) = args.ct.resolve()?;
    let sizes = MapSizes {
        policy_map: args.policy_map_size,
        ct_tcp,
        ct_any,
        flow_cache: args.flow_cache_slots,
        deny_cache: !args.no_deny_cache,
        ..MapSizes::default()
    };
    let ipcache = cluster.ipcache();
    match args.emit {
        Some(Emit::C) => {
            out(
                &mut stdout,
                &format!(
                    "// node_config.h\n{}",
                    headers::render_node(&sizes, planned.len(), ipcache.entries.len())
                ),
            )?;
            for p in &planned {
                let (_, lines) = Features::derive(&p.config, &p.policy, Some(set));
                out(
                    &mut stdout,
                    &format!(
                        "\n// {} ep_config.h\n{}",
                        p.config.name,
                        headers::render_endpoint(&p.config, &lines, &sizes)
                    ),
                )?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(Emit::Maps) => {
            for p in &planned {
                let entries = EndpointEntries::build(&p.policy);
                check_sizes(&sizes, &p.config, &p.policy, &entries)
                    .map_err(|e| miette::miette!("{e}"))?;
                let c = &p.config;
                out(
                    &mut stdout,
                    &format!(
                        "endpoint {} id {} identity {} ({} policy entries)\n",
                        c.name,
                        c.id,
                        c.identity,
                        entries.policy.len()
                    ),
                )?;
                let art = codegen::EndpointArtefacts {
                    config: c.clone(),
                    features: Features::derive(c, &p.policy, None).0,
                    header: String::new(),
                    object: Vec::new(),
                    template: PathBuf::new(),
                    policy_capacity: sizes.policy_capacity(entries.hash_len()),
                    entries,
                };
                out(&mut stdout, &output::render_entries(&art))?;
            }
            out(
                &mut stdout,
                &format!(
                    "ipcache ({} entries)\n{}",
                    ipcache.entries.len(),
                    output::render_ipcache(ipcache)
                ),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Emit::Ir) | None => {}
    }
    let Some(dir) = args.output else {
        return Err(miette::miette!("--output is required"));
    };
    let cache = args.cache_dir.unwrap_or_else(|| dir.join(".cache"));
    let mut gen = Generator::new(cache, sizes).map_err(|e| miette::miette!("{e}"))?;
    let bar = progress(planned.len());
    let mut written = Vec::with_capacity(planned.len());
    for p in &planned {
        bar.set_message(p.config.name.clone());
        let art = gen
            .endpoint(&p.config, &p.policy, Some(set))
            .map_err(|e| miette::miette!("{e}"))?;
        written.push(output::write_endpoint(&dir, &art).map_err(|e| miette::miette!("{e}"))?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ipcache_images = gen
        .ipcache_images(ipcache)
        .map_err(|e| miette::miette!("{e}"))?;
    let node = gen.node_header(planned.len(), ipcache);
    let manifest = output::write_node(
        &dir,
        &sizes,
        &node,
        &ipcache_images,
        &codegen::rules::rule_table(set),
        written,
    )
    .map_err(|e| miette::miette!("{e}"))?;
    let templates: Vec<_> = gen.templates().collect();
    let compiled = templates.iter().filter(|(_, t)| !t.cached).count();
    eprintln!(
        "compiled {} endpoint(s) from {} template(s) ({} compiled by clang, {} from cache) into {}",
        planned.len(),
        templates.len(),
        compiled,
        templates.len() - compiled,
        manifest.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr when there are many endpoints (hidden when stderr is not a terminal).
fn progress(n: usize) -> indicatif::ProgressBar {
    if n < 16 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} endpoints {msg}")
    {
        bar.set_style(style);
    }
    bar
}
