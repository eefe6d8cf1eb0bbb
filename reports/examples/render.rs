//! Renders the report of a run directory:
//! `cargo run -p reports --example render -- DIR`; with `--synthetic`
//! first, writes a seeded 60-second run with traces into DIR (which must
//! not exist) and renders that.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (synthetic, dir) = match args.as_slice() {
        [flag, dir] if flag == "--synthetic" => (true, dir.clone()),
        [dir] => (false, dir.clone()),
        _ => {
            eprintln!("usage: render [--synthetic] RUN_DIR");
            std::process::exit(2);
        }
    };
    let path = std::path::Path::new(&dir);
    if synthetic {
        if path.exists() {
            eprintln!("render: {dir} exists; --synthetic writes a new directory");
            std::process::exit(2);
        }
        let load = reports::synthetic::TraceLoad {
            persists_per_s: 150.0,
            messages_per_persist: 4,
        };
        if let Err(e) = reports::synthetic::write(path, 20_000, 60.0, Some(load)) {
            eprintln!("render: writing {dir}: {e}");
            std::process::exit(1);
        }
    }
    match reports::render(path) {
        Ok(s) => println!("{} ops, {:.0} ops/s → {dir}/index.html", s.ops, s.ops_per_s),
        Err(e) => {
            eprintln!("render: {e}");
            std::process::exit(1);
        }
    }
}
