//! Renders a seeded synthetic run of 1,000,000 operations and prints how
//! long the whole report took (goal: under 5 s in release).

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    reports::synthetic::write_run(dir.path(), 1_000_000, 600.0).expect("writing the synthetic run");
    let started = std::time::Instant::now();
    let summary = reports::render(dir.path()).expect("rendering");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"ops\":{},\"render_s\":{secs:.3},\"plots\":4,\"page\":\"index.html\"}}",
        summary.ops
    );
}
