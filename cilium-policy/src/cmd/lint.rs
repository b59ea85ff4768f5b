//! `cilium-policy lint`: parse, validate and lint policy files; print diagnostics as human
//! reports, JSON, SARIF or GitHub workflow commands; exit 0 (no errors), 1 (errors, or warnings
//! with `--deny warnings`) or 2 (could not run).

use compiler::diag::{codes, Diagnostic};
use compiler::render::{self, human::Terminal, Counts, Format, SourceMap};
use miette::IntoDiagnostic;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Check policy files for errors and mistakes.
///
/// Reads every file given, every *.yaml, *.yml and *.json under each directory given
/// (recursively), or standard input for `-`. Exit status: 0 when there is no error, 1 when
/// there are errors (or warnings with --deny warnings), 2 when lint could not run.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  cilium-policy lint testdata/\n  cilium-policy lint -o sarif policies/ > lint.sarif\n  cilium-policy lint --explain CP2003"
)]
pub struct Args {
    /// Policy files, directories, or `-` for standard input.
    #[arg(required_unless_present = "explain", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Fail (exit 1) on warnings too.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub deny: Option<Deny>,
    /// Also list the objects that were skipped (kinds lint does not check).
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the documentation of a diagnostic code (e.g. CP2003 or shadowed-rule) and exit.
    #[arg(long, value_name = "CODE", conflicts_with = "paths")]
    pub explain: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Reports with source snippets, for people.
    Human,
    /// `{"diagnostics":[...]}` for scripts.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
    Sarif,
    /// GitHub Actions workflow commands (annotations on pull requests).
    Github,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deny {
    /// Treat warnings as errors for the exit status.
    Warnings,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    if let Some(code) = &args.explain {
        return explain(code);
    }
    let front = compiler::front::load(&args.paths)?;
    let diags = compiler::lint::run(&front);
    let sources: SourceMap<'_> = front
        .sources
        .iter()
        .map(|s| (s.path.as_str(), s.text.as_slice()))
        .collect();
    let stdout = std::io::stdout();
    let format = match args.output {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
        OutputFormat::Sarif => Format::Sarif,
        OutputFormat::Github => Format::Github,
    };
    let terminal = (format == Format::Human).then(|| terminal(stdout.is_terminal()));
    let text = render::render(
        &diags,
        &render::Options {
            format,
            sources: &sources,
            terminal,
        },
    );
    let mut out = stdout.lock();
    out.write_all(text.as_bytes()).into_diagnostic()?;
    // Machine formats keep stdout parseable: the extra lines go to stderr.
    let mut side: Box<dyn Write> = match format {
        Format::Human => Box::new(out),
        _ => Box::new(std::io::stderr().lock()),
    };
    if args.verbose {
        for s in &front.skipped {
            let name = if s.name.is_empty() {
                "(unnamed)"
            } else {
                &s.name
            };
            writeln!(
                side,
                "skipped {} {}/{} at {}:{}:{}",
                s.api_version, s.kind, name, s.file, s.span.line, s.span.column
            )
            .into_diagnostic()?;
        }
    }
    if format == Format::Human || args.verbose {
        if format == Format::Human && !diags.is_empty() {
            writeln!(side).into_diagnostic()?;
        }
        writeln!(side, "{}", render::summary(&diags, front.sources.len())).into_diagnostic()?;
    }
    side.flush().into_diagnostic()?;
    Ok(status(&diags, args.deny))
}

/// 1 when there is an error, or a warning under `--deny warnings`; 0 otherwise.
fn status(diags: &[Diagnostic], deny: Option<Deny>) -> ExitCode {
    let c = Counts::of(diags);
    let fail = c.errors > 0 || (deny == Some(Deny::Warnings) && c.warnings > 0);
    if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Colour when stdout is a terminal and `NO_COLOR` is unset; width from `COLUMNS`.
fn terminal(is_tty: bool) -> Terminal {
    let color = is_tty && std::env::var_os("NO_COLOR").is_none();
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    Terminal { color, width }
}

fn explain(query: &str) -> miette::Result<ExitCode> {
    let Some(code) = codes::find(query) else {
        let known: Vec<&str> = codes::ALL.iter().map(|c| c.code).collect();
        return Err(miette::miette!(
            help = format!("known codes: {}", known.join(", ")),
            "unknown diagnostic code `{query}`"
        ));
    };
    println!(
        "{} {} ({})\n\n{}",
        code.code,
        code.name,
        code.severity.name(),
        code.doc
    );
    Ok(ExitCode::SUCCESS)
}
