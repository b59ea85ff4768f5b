//! The front end: bytes → spanned syntax trees → decoded, validated objects → one
//! [`ir::PolicySet`] plus the endpoint [`ir::Inventory`], with a diagnostic for every problem.
//!
//! Stages: [`input`] reads paths; [`yaml`] builds [`node::Node`] trees (JSON is read as YAML 1.2
//! flow); [`objects`] recognises each document and dispatches to the decoders
//! ([`k8s_netpol`], [`cilium_rule`], [`workload`], [`cilium_endpoint`], [`cidr_group`],
//! [`service`], [`node_object`]); [`lower`] applies Cilium's namespacing and
//! commits an object's rules only if it decoded without error.

pub mod annotations;
pub mod cidr;
pub mod cidr_group;
pub mod cilium_endpoint;
pub mod cilium_peers;
pub mod cilium_ports;
pub mod cilium_rule;
pub mod codes;
pub mod decode;
pub mod input;
pub mod json;
pub mod k8s_netpol;
pub mod l7;
pub mod lines;
pub mod lower;
pub mod node;
pub mod node_object;
pub mod objects;
pub mod ports;
pub mod selector;
pub mod service;
pub mod workload;
pub mod yaml;

pub use codes::FRONT_CODES;
pub use input::{read_inputs, read_policy_inputs, InputError, Source};

use crate::diag::Diagnostic;
use decode::Cx;
use ir::Span;
use std::path::PathBuf;
use yaml::ReadError;

/// An object of a kind the front end does not decode (listed in verbose output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub file: String,
    pub span: Span,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// Everything the front end produced. `policy.files[i]` is `sources[i]`.
#[derive(Debug, Default)]
pub struct FrontOutput {
    pub sources: Vec<Source>,
    pub policy: ir::PolicySet,
    pub inventory: ir::Inventory,
    pub diagnostics: Vec<Diagnostic>,
    pub skipped: Vec<Skipped>,
}

impl FrontOutput {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The messages of the error diagnostics (warnings left out).
    pub fn error_messages(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect()
    }
}

/// Reads the paths and parses them (see [`read_policy_inputs`] and [`parse_sources`]).
pub fn load(paths: &[PathBuf]) -> Result<FrontOutput, InputError> {
    Ok(parse_sources(read_policy_inputs(paths)?))
}

/// Parses, validates and lowers every source. Never fails: problems are diagnostics, and an
/// object with an error contributes nothing to `policy` or `inventory`. Files are parsed in
/// parallel and merged in input order, so the output does not depend on scheduling.
pub fn parse_sources(sources: Vec<Source>) -> FrontOutput {
    let mut out = FrontOutput::default();
    for src in &sources {
        out.policy.add_file(&src.path);
    }
    for (diags, file) in parse_all(&sources) {
        out.diagnostics.extend(diags);
        out.policy.absorb(file.policy);
        out.inventory.extend(file.inventory);
        out.skipped.extend(file.skipped);
    }
    out.sources = sources;
    out
}

/// Runs [`parse_one`] over every source on all available cores; results in input order.
fn parse_all(sources: &[Source]) -> Vec<(Vec<Diagnostic>, objects::Owned)> {
    let workers = crate::par::workers().min(sources.len());
    if workers <= 1 {
        return sources
            .iter()
            .enumerate()
            .map(|(i, s)| parse_one(i, s))
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, (Vec<Diagnostic>, objects::Owned))> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(src) = sources.get(i) else {
                                return done;
                            };
                            done.push((i, parse_one(i, src)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Reads, decodes and lowers one source (file id `index`).
fn parse_one(index: usize, src: &Source) -> (Vec<Diagnostic>, objects::Owned) {
    let stem = std::path::Path::new(&src.path)
        .file_stem()
        .map_or_else(|| src.path.clone(), |s| s.to_string_lossy().into_owned());
    let mut owned = objects::Owned::new(ir::FileId(index as u32), stem);
    let mut cx = Cx::new(&src.path);
    if let Some(text) = text_of(&mut cx, &src.text) {
        let docs = if src.path.ends_with(".json") {
            json::read_json(text, yaml::Limits::default())
        } else {
            yaml::read_stream(text, yaml::Limits::default())
        };
        for doc in docs {
            for e in &doc.errors {
                cx.emit(read_error(&src.path, e));
            }
            match &doc.root {
                Some(root) if doc.errors.is_empty() => {
                    objects::document(&mut cx, root, &mut owned.sink())
                }
                // Still checked, so every independent error is reported, but into scratch output.
                Some(root) => {
                    let mut scratch = objects::Owned::new(owned.file, owned.stem.clone());
                    objects::document(&mut cx, root, &mut scratch.sink())
                }
                None => {}
            }
        }
    }
    (cx.diags, owned)
}

/// The UTF-8 text of a source, or an `input-too-large` / `invalid-encoding` diagnostic.
fn text_of<'t>(cx: &mut Cx<'_>, bytes: &'t [u8]) -> Option<&'t str> {
    if bytes.len() as u64 > input::MAX_FILE_BYTES {
        let msg = format!(
            "file is larger than {} MiB; refusing to parse it",
            input::MAX_FILE_BYTES >> 20
        );
        cx.report(
            &codes::TOO_LARGE,
            Span {
                offset: 0,
                len: 0,
                line: 1,
                column: 1,
            },
            "",
            msg,
            None,
        );
        return None;
    }
    let fail = |cx: &mut Cx<'_>, offset: usize, msg: String| {
        let before = &bytes[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let col = offset
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        let span = Span {
            offset: offset as u32,
            len: 1,
            line: line as u32,
            column: col as u32,
        };
        cx.report(
            &codes::INVALID_ENCODING,
            span,
            "",
            msg,
            Some("policy files must be UTF-8 text".into()),
        );
    };
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        fail(cx, 0, "file is UTF-16 encoded".into());
        return None;
    }
    match std::str::from_utf8(bytes) {
        Err(e) => {
            fail(
                cx,
                e.valid_up_to(),
                format!(
                    "file is not UTF-8: invalid byte sequence at byte {}",
                    e.valid_up_to()
                ),
            );
            None
        }
        Ok(t) => match t.find('\0') {
            Some(i) => {
                fail(cx, i, "file contains NUL bytes (binary data?)".into());
                None
            }
            None => Some(t),
        },
    }
}

fn read_error(file: &str, e: &ReadError) -> Diagnostic {
    let code = match e {
        ReadError::Syntax { .. } | ReadError::ComplexKey { .. } => &codes::SYNTAX,
        ReadError::DuplicateKey { .. } => &codes::DUPLICATE_KEY,
        ReadError::TooManyNodes { .. } | ReadError::TooDeep { .. } => &codes::TOO_LARGE,
    };
    let d = Diagnostic::new(code, file, e.span(), "", e.to_string());
    match e {
        ReadError::DuplicateKey { key, .. } => {
            d.with_help(format!("remove one of the two `{key}` entries"))
        }
        _ => d,
    }
}
