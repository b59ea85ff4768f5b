//! Generates the LALR parsers from the `.lalrpop` grammars under `src/` (the label-selector syntax)
//! into `OUT_DIR`.

fn main() {
    lalrpop::Configuration::new()
        .emit_rerun_directives(true)
        .set_in_dir("src")
        .process()
        .expect("lalrpop grammar failed to generate");
}
