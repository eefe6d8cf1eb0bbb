//! Issue 18: the load stays on the live nodes while a fault is on. A kill
//! leaves the processes of the killed node refused; they back off instead
//! of spinning through the shared rate, which the others carry.

use super::run;

/// The least `ok` rate inside kill windows against outside them. This
/// test's run (seed 18) measured 0.29 before issue 18 (the processes of
/// the killed node spun through the rate on refused connections) and 0.91
/// after it, on the shared 2-core machine; 0.6 leaves room for a busy one.
const KILL_RATIO_MIN: f64 = 0.6;

/// Refused ops per second on the killed node at most: its ten processes
/// back off up to half a second each (30/s measured), where before they
/// spun through the rate (117 and 167/s measured at rate 200).
const REFUSED_PER_S_MAX: f64 = 45.0;

#[test]
fn kill_keeps_the_load_on_the_live_nodes() {
    let r = run(&[
        "--workload",
        "ordering",
        "--nemesis",
        "kill",
        "--seed",
        "18",
        "--time-limit-s",
        "26",
        "--nemesis-interval-s",
        "8",
        "--rate",
        "200",
    ]);
    assert_eq!(r.code(), 0, "{}", r.explain());
    let rates = &r.json("summary.json")["fault_rates"];
    let ratio = rates["ratio"].as_f64().unwrap_or(0.0);
    assert!(
        ratio >= KILL_RATIO_MIN,
        "ok ops/s inside kill windows / outside = {ratio:.2} < {KILL_RATIO_MIN}: {rates:#}"
    );
    let history = r.history();
    assert!(rates["windows"].as_array().is_some_and(|w| !w.is_empty()));
    for w in rates["windows"].as_array().unwrap() {
        let cut = &w["cut_off"];
        let (start_s, end_s) = (w["start_s"].as_f64().unwrap(), w["end_s"].as_f64().unwrap());
        let refused = history
            .iter()
            .filter(|e| e["type"] == "fail" && cut.as_array().unwrap().contains(&e["node"]))
            .filter(|e| {
                let t = e["time"].as_u64().unwrap() as f64 / 1e9;
                t >= start_s && t < end_s
            })
            .count();
        let per_s = refused as f64 / (end_s - start_s);
        assert!(
            per_s <= REFUSED_PER_S_MAX,
            "{per_s:.1} refused ops/s on {cut} in {w}: the processes spin"
        );
        assert!(refused > 0, "no op was refused by the killed node {cut}");
    }
}
