//! Lints a generated repository of 1,000 policy files (about 10 MB: NetworkPolicies, CNPs with
//! L4/L7 rules, CCNPs, and Deployments for the inventory) end to end: read, parse, lower, lint.
//!
//! `rules_only` times the lint rules alone over the lowered policy (32,000 rules, 1,200
//! endpoints). Run: `cargo bench -p compiler --bench lint`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

const FILES: usize = 1000;
const APPS: [&str; 12] = [
    "frontend", "backend", "db", "cache", "queue", "auth", "search", "billing", "mailer",
    "gateway", "metrics", "worker",
];

/// A tiny deterministic generator, so every run lints the same repository.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
    fn app(&mut self) -> &'static str {
        APPS[self.next(APPS.len())]
    }
}

fn network_policies(out: &mut String, rng: &mut Lcg, ns: &str, file: usize) {
    for p in 0..10 {
        let app = rng.app();
        let _ = write!(
            out,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np-{file}-{p}\n  namespace: {ns}\n  labels:\n    owner: team-{}\nspec:\n  podSelector:\n    matchLabels:\n      app: {app}\n      component: c{file}-{p}\n    matchExpressions:\n    - key: tier\n      operator: In\n      values: [web, api]\n  policyTypes: [Ingress, Egress]\n  ingress:\n",
            rng.next(20)
        );
        for _ in 0..2 {
            let _ = write!(
                out,
                "  - from:\n    - podSelector:\n        matchLabels:\n          app: {}\n    - namespaceSelector:\n        matchLabels:\n          team: t{}\n      podSelector:\n        matchLabels:\n          role: client\n    ports:\n    - protocol: TCP\n      port: {}\n    - protocol: TCP\n      port: 9000\n      endPort: 9100\n",
                rng.app(),
                rng.next(8),
                8000 + rng.next(1000)
            );
        }
        let _ = write!(
            out,
            "  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.{o}.0.0/16\n        except:\n        - 10.{o}.{}.0/24\n    ports:\n    - protocol: UDP\n      port: 53\n",
            rng.next(250),
            o = rng.next(200),
        );
    }
}

fn cilium_policy(out: &mut String, rng: &mut Lcg, ns: &str, file: usize) {
    let _ = write!(
        out,
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: cnp-{file}\n  namespace: {ns}\nspecs:\n"
    );
    for s in 0..8 {
        let _ = write!(
            out,
            "- description: \"spec {s} of file {file}\"\n  endpointSelector:\n    matchLabels:\n      app: {}\n      component: c{file}-{s}\n      k8s:io.kubernetes.pod.namespace: {ns}\n  ingress:\n  - fromEndpoints:\n    - matchLabels:\n        app: {}\n    toPorts:\n    - ports:\n      - port: \"{}\"\n        protocol: TCP\n      rules:\n        http:\n        - method: GET\n          path: \"/api/v1/.*\"\n        - method: POST\n          path: \"/api/v1/orders\"\n          headers:\n          - \"X-Team: shop\"\n  - fromEntities:\n    - cluster\n    toPorts:\n    - ports:\n      - port: \"9090\"\n        protocol: TCP\n  egress:\n  - toEndpoints:\n    - matchExpressions:\n      - key: app\n        operator: In\n        values: [{}, {}]\n    toPorts:\n    - ports:\n      - port: \"5432\"\n        protocol: TCP\n  - toCIDRSet:\n    - cidr: 192.168.{}.0/24\n      except:\n      - 192.168.{}.128/25\n  - toEndpoints:\n    - matchLabels:\n        k8s:io.kubernetes.pod.namespace: kube-system\n        k8s-app: kube-dns\n    toPorts:\n    - ports:\n      - port: \"53\"\n        protocol: ANY\n      rules:\n        dns:\n        - matchPattern: \"*\"\n",
            rng.app(),
            rng.app(),
            8000 + rng.next(1000),
            rng.app(),
            rng.app(),
            s,
            s
        );
    }
}

fn deployments(out: &mut String, rng: &mut Lcg, ns: &str, file: usize) {
    for d in 0..12 {
        let app = rng.app();
        let _ = write!(
            out,
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}-{file}-{d}\n  namespace: {ns}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {app}\n  template:\n    metadata:\n      labels:\n        app: {app}\n        tier: web\n    spec:\n      serviceAccountName: {app}\n      containers:\n      - name: {app}\n        image: registry.example/{app}:1.{d}\n        ports:\n        - name: http\n          containerPort: 8080\n        - name: metrics\n          containerPort: 9090\n"
        );
    }
}

/// Writes the repository: 45% NetworkPolicy streams, 45% CNPs, 10% Deployments; returns bytes.
fn generate(dir: &Path) -> usize {
    let mut rng = Lcg(42);
    let mut total = 0;
    for i in 0..FILES {
        let ns = format!("ns{}", i % 25);
        let mut text = String::new();
        let sub = match i % 10 {
            0..=3 => {
                network_policies(&mut text, &mut rng, &ns, i);
                "netpol"
            }
            4..=8 => {
                cilium_policy(&mut text, &mut rng, &ns, i);
                "cilium"
            }
            _ => {
                deployments(&mut text, &mut rng, &ns, i);
                "workloads"
            }
        };
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).expect("create bench dir");
        std::fs::write(d.join(format!("policy-{i:04}.yaml")), &text).expect("write bench file");
        total += text.len();
    }
    total
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let bytes = generate(tmp.path());
    let paths = [tmp.path().to_path_buf()];
    // Sanity: the generated repository is valid and realistic in size.
    let front = compiler::front::load(&paths).expect("load");
    let diags = compiler::lint::run(&front);
    assert_eq!(front.sources.len(), FILES);
    if let Some(e) = diags.iter().find(|d| d.is_error()) {
        panic!("the generated repository must be valid: {e}");
    }
    eprintln!(
        "lint bench: {FILES} files, {:.1} MB, {} rules, {} endpoints, {} diagnostics",
        bytes as f64 / 1e6,
        front.policy.rules.len(),
        front.inventory.endpoints.len(),
        diags.len()
    );
    let mut g = c.benchmark_group("lint");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("1000_files_10MB", |b| {
        b.iter(|| {
            let front = compiler::front::load(&paths).expect("load");
            compiler::lint::run(&front).len()
        })
    });
    // The lint rules alone, over the already-lowered policy and inventory.
    g.bench_function("rules_only", |b| {
        b.iter(|| compiler::lint::check(&front.policy, &front.inventory).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
