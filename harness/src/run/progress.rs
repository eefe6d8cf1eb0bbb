//! The progress bar: elapsed time, ops/s, ok / fail / info and the faults
//! in force, refreshed four times a second.

use crate::run::workers::Workers;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Starts the bar; it stops updating at `deadline`.
pub fn show(
    workers: Arc<Workers>,
    active: Arc<Mutex<Vec<String>>>,
    deadline: Instant,
) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"),
    );
    let b = bar.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        while Instant::now() < deadline && !b.is_finished() {
            let (ok, fail, info) = workers.counters.get();
            let rate = (ok + fail + info) as f64 / started.elapsed().as_secs_f64().max(0.001);
            let faults = active.lock().expect("active lock").join("; ");
            let faults = if faults.is_empty() {
                "none".to_string()
            } else {
                faults
            };
            b.set_message(format!(
                "{rate:.0} ops/s  ok {ok}  fail {fail}  info {info}  faults: {faults}"
            ));
            b.tick();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    bar
}
