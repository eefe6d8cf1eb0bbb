//! Renders the report of a run directory: `cargo run -p reports --example render -- DIR`.

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: render RUN_DIR");
        std::process::exit(2);
    };
    match reports::render(std::path::Path::new(&dir)) {
        Ok(s) => println!("{} ops, {:.0} ops/s → {dir}/index.html", s.ops, s.ops_per_s),
        Err(e) => {
            eprintln!("render: {e}");
            std::process::exit(1);
        }
    }
}
