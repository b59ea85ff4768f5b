//! Prints the IR text, inventory, skipped objects and diagnostics of the given inputs
//! (a debugging aid for the front end: `cargo run -p compiler --example front_dump -- FILE...`).

fn main() -> std::process::ExitCode {
    let paths: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let out = match compiler::front::load(&paths) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    print!("{}", ir::text::render(&out.policy));
    for ep in &out.inventory.endpoints {
        println!(
            "endpoint {} {:?} sa={:?} ports={:?} ips={:?}",
            ep.name, ep.k8s_labels, ep.service_account, ep.ports, ep.ips
        );
    }
    for s in &out.skipped {
        println!(
            "skipped {}:{}:{} {} {} {}",
            s.file, s.span.line, s.span.column, s.api_version, s.kind, s.name
        );
    }
    for d in &out.diagnostics {
        println!("{d}");
        if let Some(h) = &d.help {
            println!("    help: {h}");
        }
    }
    std::process::ExitCode::SUCCESS
}
