//! `cilium-policy policy import FILE | get | delete (--all | LABEL...)` (seed §2.2.8, §2.3.8).

use agent::model::{PolicyDelete, PolicyPut, PolicyReply, RevisionReply};
use hyper::Method;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Import a policy file (Cilium JSON rules, or any policy manifest).
    Import {
        file: PathBuf,
        /// Return without waiting for enforcement.
        #[arg(long)]
        no_wait: bool,
    },
    /// Print the imported rules.
    Get {
        /// Print the agent's reply as JSON.
        #[arg(short = 'o', long = "output", value_parser = ["json"])]
        output: Option<String>,
    },
    /// Delete every rule (`--all`) or exactly the rules carrying all the given labels.
    Delete {
        #[arg(long)]
        all: bool,
        /// Labels (`[source:]key[=value]`) of the rules to delete.
        labels: Vec<String>,
        #[arg(long)]
        no_wait: bool,
    },
}

pub fn run(args: Args, api_socket: Option<&Path>) -> miette::Result<ExitCode> {
    let client = super::client_util::client(api_socket)?;
    match args.command {
        Sub::Import { file, no_wait } => {
            let sources = super::client_util::read_sources(&[file])?;
            let r: RevisionReply = client.call(
                Method::PUT,
                "/v1/policy",
                Some(&PolicyPut {
                    sources,
                    wait: !no_wait,
                }),
            )?;
            super::apply::print_revision(&r);
        }
        Sub::Get { output } => {
            let p: PolicyReply = client.get("/v1/policy")?;
            if output.is_some() {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&p).map_err(|e| miette::miette!("{e}"))?
                );
            } else {
                print!("{}", p.rules);
                for (path, lists) in &p.deleted_labels {
                    for labels in lists {
                        println!("Deleted from {path}: rules labelled {}", labels.join(","));
                    }
                }
                println!("Revision: {}", p.revision);
            }
        }
        Sub::Delete {
            all,
            labels,
            no_wait,
        } => {
            if all != labels.is_empty() {
                return Err(miette::miette!(
                    "give either --all or labels of the rules to delete"
                ));
            }
            let req = PolicyDelete {
                all,
                labels,
                wait: !no_wait,
                ..PolicyDelete::default()
            };
            let r: RevisionReply = client.call(Method::DELETE, "/v1/policy", Some(&req))?;
            super::apply::print_revision(&r);
        }
    }
    Ok(ExitCode::SUCCESS)
}
