//! End-to-end tests of the report of a run directory: files, sizes, the
//! figures, and the page in a real headless browser.

use std::path::Path;
use std::process::Command;

fn rendered() -> (tempfile::TempDir, reports::Summary) {
    let dir = tempfile::tempdir().unwrap();
    reports::synthetic::write_run(dir.path(), 20_000, 60.0).unwrap();
    let summary = reports::render(dir.path()).unwrap();
    (dir, summary)
}

#[test]
fn every_plot_exists_and_decodes_at_the_expected_size() {
    let (dir, _) = rendered();
    for name in [
        "latency-raw.png",
        "latency-quantiles.png",
        "rate.png",
        "fsync.png",
        "fsync-distribution.png",
    ] {
        let file =
            std::fs::File::open(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let decoder = png::Decoder::new(std::io::BufReader::new(file));
        let reader = decoder
            .read_info()
            .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
        let info = reader.info();
        assert_eq!((info.width, info.height), reports::plots::SIZE, "{name}");
    }
}

/// The timeline is as wide as the time plots (so that their axes line
/// up) and has a row per lane.
#[test]
fn the_timeline_is_as_wide_as_the_plots() {
    let (dir, _) = rendered();
    let file = std::fs::File::open(dir.path().join("timeline.png")).unwrap();
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let (width, height) = (reader.info().width, reader.info().height);
    assert_eq!(width, reports::plots::SIZE.0);
    assert!((200..600).contains(&height), "{height}");
}

/// Every documented field of summary.json's `fsync` entries
/// (docs/store.md) is there, with its type.
#[test]
fn the_summary_fsync_entries_have_the_documented_fields() {
    let (dir, _) = traced(2_000, 20.0);
    reports::render(dir.path()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    for n in json["fsync"].as_array().unwrap() {
        for k in ["node", "source"] {
            assert!(n[k].is_string(), "{k}: {n}");
        }
        assert!(n["available"].is_boolean(), "{n}");
        for k in ["count", "over_threshold", "processes", "persist_events"] {
            assert!(n[k].is_u64(), "{k}: {n}");
        }
        for k in ["p50_ms", "p99_ms", "max_ms", "threshold_ms"] {
            assert!(n[k].is_number(), "{k}: {n}");
        }
        for k in ["leader_changes", "slow_disk_warnings"] {
            assert!(n[k].is_u64() || n[k].is_null(), "{k}: {n}");
        }
        assert!(n["restarts_s"].is_array(), "{n}");
    }
}

/// A synthetic run with traces at a 60-second run's rates.
fn traced(ops: u64, seconds: f64) -> (tempfile::TempDir, reports::synthetic::Written) {
    let dir = tempfile::tempdir().unwrap();
    let load = reports::synthetic::TraceLoad {
        persists_per_s: 150.0,
        messages_per_persist: 4,
    };
    let written = reports::synthetic::write(dir.path(), ops, seconds, Some(load)).unwrap();
    (dir, written)
}

/// Issue 28: every persist event of every process is counted, from the
/// traces; n2, killed twice, has three processes and two restarts.
#[test]
fn the_fsync_counts_are_the_persist_events_of_every_process() {
    let (dir, written) = traced(20_000, 60.0);
    let s = reports::render(dir.path()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    for (node, events) in &written.persist_events {
        let n = json["fsync"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == *node.as_str())
            .unwrap();
        assert_eq!(n["source"], "trace", "{n}");
        assert_eq!(n["count"].as_u64(), Some(*events), "{node}: {n}");
        assert_eq!(n["persist_events"].as_u64(), Some(*events), "{node}");
        assert!(n["available"].as_bool().unwrap(), "{node}");
    }
    // n2's three processes: the earlier two's persists are in the count
    // (metrics.json says 2000, its last process's).
    let n2 = s.fsync.iter().find(|n| n.node == "n2").unwrap();
    let starts = &written.starts_s.iter().find(|(n, _)| n == "n2").unwrap().1;
    assert_eq!(n2.processes, Some(3));
    assert_eq!(n2.restarts_s.len(), 2);
    for (got, want) in n2.restarts_s.iter().zip(&starts[1..]) {
        assert!(
            (got - want).abs() < 0.002,
            "restart at {got} s, written {want} s"
        );
    }
    let before_last = (starts[2] * 150.0) as u64;
    assert!(n2.count > before_last, "{} persists", n2.count);
    // One in 4096 persists is written slow, over the threshold of 500 ms.
    assert!(s.fsync.iter().any(|n| n.over_threshold > 0));
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(
        html.contains("trace: every persist, 3 processes"),
        "the page says the source"
    );
    assert!(html.contains("timeline.png") && html.contains("fsync-distribution.png"));
    assert!(
        html.contains("history_epoch_unix_ms"),
        "the page says how time was placed"
    );
}

#[test]
fn the_summary_has_the_figures_of_the_run() {
    let (dir, s) = rendered();
    assert_eq!(s.ops, 20_000);
    assert_eq!(s.kinds.len(), 2);
    assert_eq!(s.faults.len(), 1);
    let fault = &s.faults[0];
    assert!((fault.start_s - 18.0).abs() < 0.01 && (fault.end_s - 30.0).abs() < 0.01);
    let first_failure = fault.first_failure_after_s.unwrap();
    assert!((0.0..1.0).contains(&first_failure), "{first_failure}");
    assert!(fault.first_ok_after_heal_s.unwrap() < 1.0);
    assert!(!s.fsync[2].available && s.fsync[0].count == 2000);
    assert_eq!(s.fsync[0].leader_changes, Some(2));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(json["ops"], 20_000);
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(
        html.contains("did not answer")
            && html.contains("linearizability")
            && html.contains("nodes/n1/node.log")
    );
}

/// Issue 14: a run whose history holds `member` and `transfer` events
/// lists its configuration changes in summary.json and on the page.
#[test]
fn membership_changes_are_listed_with_the_configuration_over_time() {
    let dir = tempfile::tempdir().unwrap();
    reports::synthetic::write_run(dir.path(), 2_000, 20.0).unwrap();
    let events = [
        r#"{"process":"nemesis","type":"info","f":"member","time":30000000000,"value":{"phase":"start","change":"replace","targets":["n2","n4"],"add":["n4"],"remove":["n2"],"leader":false,"before":{"voters":["n1","n2","n3"],"learners":[]}}}"#,
        r#"{"process":"nemesis","type":"info","f":"member","time":34000000000,"value":{"phase":"end","change":"replace","targets":["n2","n4"],"committed":true,"after":{"voters":["n1","n3","n4"],"learners":[]}}}"#,
        r#"{"process":"nemesis","type":"info","f":"transfer","time":35000000000,"value":{"phase":"start","targets":["n3"],"from":"n1"}}"#,
        r#"{"process":"nemesis","type":"info","f":"transfer","time":36000000000,"value":{"phase":"end","targets":["n3"],"leader":"n3"}}"#,
    ];
    let path = dir.path().join("history.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&(events.join("\n") + "\n"));
    std::fs::write(&path, text).unwrap();
    let s = reports::render(dir.path()).unwrap();
    assert_eq!(s.configurations.len(), 2);
    assert_eq!(s.configurations[0].committed, Some(true));
    assert_eq!(s.configurations[1].leader.as_deref(), Some("n3"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["configurations"][0]["after"]["voters"],
        serde_json::json!(["n1", "n3", "n4"])
    );
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.contains("Configuration over time"));
    assert!(html.contains("<td>n1 n2 n3</td><td>n1 n3 n4</td><td>yes</td>"));
    // Without such events the section is absent.
    let (plain, s) = rendered();
    assert!(s.configurations.is_empty());
    let html = std::fs::read_to_string(plain.path().join("index.html")).unwrap();
    assert!(!html.contains("Configuration over time"));
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn the_page_loads_in_a_headless_browser_with_every_image() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("ORDEAL_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "chromium is required in CI (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no chromium to load index.html in (apt-get install chromium)");
        return;
    };
    let (dir, _) = rendered();
    let page = dir.path().join("index.html");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--allow-file-access-from-files",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-images=\"ok\""),
        "every image has a natural width:\n{}\n{}",
        &dom[..dom.len().min(600)],
        String::from_utf8_lossy(&out.stderr)
    );
    // And the check can fail: a page whose image is missing is reported.
    std::fs::remove_file(dir.path().join("rate.png")).unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", Path::new(&page).display()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("broken:rate.png"));
}
