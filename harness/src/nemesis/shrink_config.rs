//! The shrinker's last step (issue 32): the node settings a failing run
//! drew unlike their defaults (the swarm's node count and ordeal-node's
//! settings) put back to the default one at a time, each in the
//! candidate's command line (which a replay parses again, so that the
//! candidate runs with it), and kept back when the candidate still fails.
//! What is left differing is what the failure needs.
//!
//! The node count goes back only when no fault names a node the smaller
//! cluster would not have (a kill of `n5` cannot run on three nodes), and
//! not on the ssh runtime (its hosts set the count). Pure: the settings
//! and their defaults are given (`cli/shrink.rs` takes them from the
//! swarm's); the step itself is `Shrinker::reset_config` in `shrink.rs`,
//! its runs the `Oracle`'s (tested here, with a fake oracle).

use crate::nemesis::schedule::{Schedule, ScheduledFault};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The setting that is the node count (its flag is `--nodes`).
pub const NODES: &str = "nodes";

/// One node setting: its name (`tick_ms`), its flag in a test's command
/// line (`--tick-ms`) and its default there (`100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The name, as `test.json`'s `node_config` spells it.
    pub name: String,
    /// The test's flag.
    pub flag: String,
    /// The default value, as the flag takes it.
    pub default: String,
}

/// What the `config` step did with each setting that differed from its
/// default (`shrunk.json`'s `config`); values are `[drawn, default]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConfigShrink {
    /// Put back to the default: the candidate still failed.
    pub reset: BTreeMap<String, [Value; 2]>,
    /// Kept: with the default, the candidate passed all its reruns.
    pub needed: BTreeMap<String, [Value; 2]>,
    /// Not tried, and why (the node count when a fault names a node the
    /// default cluster lacks).
    pub skipped: BTreeMap<String, Skipped>,
    /// Not tried: the budget ran out first.
    pub untried: BTreeMap<String, [Value; 2]>,
}

/// A setting the step did not try, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The value the run has.
    pub drawn: Value,
    /// The default it was not put back to.
    pub default: Value,
    /// Why not.
    pub why: String,
}

impl ConfigShrink {
    /// Every setting of `line` unlike its default, none tried yet.
    pub fn untried(line: &str, defaults: &[Setting]) -> ConfigShrink {
        let untried = differing(line, defaults)
            .into_iter()
            .map(|(s, drawn)| (s.name.clone(), pair(&drawn, &s.default)))
            .collect();
        ConfigShrink {
            untried,
            ..ConfigShrink::default()
        }
    }

    /// One line: `reset a 1 → 2, …; needed …; skipped …; untried …`
    /// (`none differs from its default` when nothing did).
    pub fn describe(&self) -> String {
        let list = |m: &BTreeMap<String, [Value; 2]>| {
            m.iter()
                .map(|(k, [d, v])| format!("{k} {d} → {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        for (label, m) in [
            ("reset", &self.reset),
            ("needed", &self.needed),
            ("untried", &self.untried),
        ] {
            if !m.is_empty() {
                parts.push(format!("{label} {}", list(m)));
            }
        }
        if !self.skipped.is_empty() {
            let skipped: Vec<String> = self
                .skipped
                .iter()
                .map(|(k, s)| format!("{k} {} ({})", s.drawn, s.why))
                .collect();
            parts.push(format!("skipped {}", skipped.join(", ")));
        }
        if parts.is_empty() {
            return "no setting differs from its default".into();
        }
        parts.join("; ")
    }
}

/// `[drawn, default]`, each a JSON number or boolean when it reads as one.
pub fn pair(drawn: &str, default: &str) -> [Value; 2] {
    let value = |s: &str| serde_json::from_str(s).unwrap_or_else(|_| json!(s));
    [value(drawn), value(default)]
}

/// The settings `line` gives a value unlike their default, with that
/// value, in `defaults`' order (a setting `line` lacks, one the system
/// does not take, is left out).
pub fn differing<'s>(line: &str, defaults: &'s [Setting]) -> Vec<(&'s Setting, String)> {
    defaults
        .iter()
        .filter_map(|s| {
            let value = flag_value(line, &s.flag)?;
            (value != s.default).then(|| (s, value.to_string()))
        })
        .collect()
}

/// The word after `flag` in `line`.
pub fn flag_value<'l>(line: &'l str, flag: &str) -> Option<&'l str> {
    let mut words = line.split_whitespace();
    words.by_ref().find(|w| *w == flag)?;
    words.next()
}

/// `line` with the word after each `flag` replaced by `value`.
pub fn with_flag(line: &str, flag: &str, value: &str) -> String {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    for i in 1..words.len() {
        if words[i - 1] == flag {
            words[i] = value;
        }
    }
    words.join(" ")
}

/// The highest `n<K>` any fault names, in its targets or parameters.
pub fn highest_node(faults: &[ScheduledFault]) -> Option<u64> {
    fn walk(v: &Value, high: &mut Option<u64>) {
        match v {
            Value::String(s) => {
                let k = s.strip_prefix('n').and_then(|d| d.parse::<u64>().ok());
                *high = (*high).max(k);
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, high)),
            Value::Object(o) => o.values().for_each(|v| walk(v, high)),
            _ => {}
        }
    }
    let mut high = None;
    for f in faults {
        for t in &f.targets {
            walk(&json!(t), &mut high);
        }
        walk(&f.params, &mut high);
        if let Some(heal) = &f.heal {
            for t in &heal.targets {
                walk(&json!(t), &mut high);
            }
            walk(&heal.params, &mut high);
        }
    }
    high
}

/// Why `setting` cannot go back to its default in `schedule`, if not.
pub fn blocked(setting: &Setting, schedule: &Schedule) -> Option<String> {
    if setting.name != NODES {
        return None;
    }
    if flag_value(&schedule.command_line, "--runtime") == Some("ssh") {
        return Some("the ssh runtime's hosts set the node count".into());
    }
    let default: u64 = setting.default.parse().ok()?;
    let high = highest_node(&schedule.faults)?;
    (high > default).then(|| format!("a fault names n{high}, which {default} nodes lack"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::schedule::{ScheduleClock, SCHEDULE_VERSION};
    use crate::nemesis::shrink::{Oracle, Outcome, Shrinker, Shrunk};

    const LINE: &str = "cargo run -p harness -- --workload ordering --nemesis kill --nodes 5 --seed 3 --snapshot-interval-bytes 4096 --max-message-count 500 --tick-ms 50 --election-tick 8";

    fn defaults() -> Vec<Setting> {
        [
            (NODES, "--nodes", "3"),
            (
                "snapshot_interval_bytes",
                "--snapshot-interval-bytes",
                "32768",
            ),
            ("max_message_count", "--max-message-count", "500"),
            ("tick_ms", "--tick-ms", "100"),
            ("election_tick", "--election-tick", "10"),
            ("cut_when_idle", "--cut-when-idle", "true"),
        ]
        .into_iter()
        .map(|(name, flag, default)| Setting {
            name: name.into(),
            flag: flag.into(),
            default: default.into(),
        })
        .collect()
    }

    fn schedule(target: &str) -> Schedule {
        Schedule {
            version: SCHEDULE_VERSION,
            seed: 3,
            clock: ScheduleClock {
                time_limit_s: 60,
                nemesis_interval_s: 10,
                recovery_s: 10,
                election_timeout_ms: 400,
            },
            command_line: LINE.into(),
            plan: json!({"node_config": {"tick_ms": 50}}),
            replay_of: None,
            faults: vec![ScheduledFault {
                name: "kill".into(),
                targets: vec![target.into()],
                params: Value::Null,
                heal: None,
                start_ms: 10_000,
                end_ms: 20_000,
                actual: None,
            }],
        }
    }

    /// Fails when the kill is in the schedule and the tick is not the
    /// default 100 ms, on every run; the budget is a number of runs.
    struct TickFake {
        runs: u32,
        budget_runs: u32,
        lines: Vec<String>,
        saved: Vec<ConfigShrink>,
    }

    impl Oracle for TickFake {
        async fn run(&mut self, c: &Schedule) -> anyhow::Result<Outcome> {
            self.runs += 1;
            self.lines.push(c.command_line.clone());
            let tick = flag_value(&c.command_line, "--tick-ms");
            let fails = tick != Some("100") && c.faults.iter().any(|f| f.name == "kill");
            Ok(Outcome {
                reproduced: fails,
                anomalies: vec!["ordering:lost".into()],
                plan: fails.then(|| json!({"command_line": c.command_line})),
            })
        }
        fn exhausted(&self) -> bool {
            self.runs >= self.budget_runs
        }
        fn improved(&mut self, shrunk: &Shrunk) -> anyhow::Result<()> {
            self.saved.push(shrunk.config.clone());
            Ok(())
        }
        fn note(&mut self, _: &str) {}
    }

    fn shrink(target: &str, reruns: u32, budget_runs: u32) -> (Shrunk, TickFake) {
        let mut fake = TickFake {
            runs: 0,
            budget_runs,
            lines: Vec::new(),
            saved: Vec::new(),
        };
        let mut shrinker = Shrinker {
            oracle: &mut fake,
            reruns,
            tail_ms: 10_000,
            time_limit_ms: 60_000,
            defaults: defaults(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let shrunk = rt
            .block_on(shrinker.shrink(schedule(target), vec!["ordering:lost".into()]))
            .unwrap();
        (shrunk, fake)
    }

    #[test]
    fn every_setting_but_the_one_the_failure_needs_goes_back_to_its_default() {
        let (shrunk, fake) = shrink("n2", 3, 1_000);
        let line = &shrunk.schedule.command_line;
        assert_eq!(flag_value(line, "--tick-ms"), Some("50"), "{line}");
        assert_eq!(flag_value(line, "--nodes"), Some("3"));
        assert_eq!(flag_value(line, "--snapshot-interval-bytes"), Some("32768"));
        assert_eq!(flag_value(line, "--election-tick"), Some("10"));
        let c = &shrunk.config;
        assert_eq!(
            c.reset.keys().collect::<Vec<_>>(),
            ["election_tick", "nodes", "snapshot_interval_bytes"]
        );
        assert_eq!(c.reset["nodes"], [json!(5), json!(3)]);
        assert_eq!(c.needed.len(), 1);
        assert_eq!(c.needed["tick_ms"], [json!(50), json!(100)]);
        assert!(c.skipped.is_empty() && c.untried.is_empty());
        // The faults: the schedule without the kill passes its 3 reruns;
        // shortening it 10 → 5 → 2.5 → 1.25 s (3 runs); moving it later
        // as far as it goes (1 run). Then the settings: nodes (1),
        // snapshot interval (1), tick (3 reruns, all passing), election
        // tick (1); max_message_count is already its default.
        assert_eq!(fake.runs, 3 + 3 + 1 + 1 + 1 + 3 + 1);
        assert_eq!(
            fake.runs as usize,
            shrunk.trials.iter().map(|t| t.runs as usize).sum::<usize>()
        );
        let config: Vec<(&str, bool)> = shrunk
            .trials
            .iter()
            .filter(|t| t.step == "config")
            .map(|t| (t.setting.as_deref().unwrap(), t.reproduced))
            .collect();
        assert_eq!(
            config,
            [
                ("nodes 5 → 3", true),
                ("snapshot_interval_bytes 4096 → 32768", true),
                ("tick_ms 50 → 100", false),
                ("election_tick 8 → 10", true)
            ]
        );
        // The last candidate that reproduced gave the schedule its plan.
        assert_eq!(shrunk.schedule.plan["command_line"], json!(line));
        assert!(shrunk.one_minimal && !shrunk.out_of_budget);
        assert_eq!(fake.saved.last(), Some(&shrunk.config));
        assert!(fake
            .lines
            .iter()
            .all(|l| l.contains("--max-message-count 500")));
        assert!(shrunk.config.describe().starts_with(
            "reset election_tick 8 → 10, nodes 5 → 3, snapshot_interval_bytes 4096 → 32768; needed tick_ms 50 → 100"
        ));
    }

    #[test]
    fn the_node_count_stays_when_a_fault_names_a_node_the_default_lacks() {
        let (shrunk, fake) = shrink("n5", 1, 1_000);
        let c = &shrunk.config;
        assert_eq!(
            c.skipped["nodes"].why,
            "a fault names n5, which 3 nodes lack"
        );
        assert_eq!(c.skipped["nodes"].drawn, json!(5));
        assert!(!c.reset.contains_key("nodes") && !c.needed.contains_key("nodes"));
        assert_eq!(
            flag_value(&shrunk.schedule.command_line, "--nodes"),
            Some("5")
        );
        assert!(
            fake.lines.iter().all(|l| l.contains("--nodes 5")),
            "no run spent on it"
        );
        assert_eq!(c.reset.len(), 2);
    }

    #[test]
    fn the_budget_stops_the_config_step_and_names_what_was_not_tried() {
        // 3 + 3 + 1 runs for the faults at 3 reruns, then one setting.
        let (shrunk, fake) = shrink("n2", 3, 8);
        assert_eq!(fake.runs, 8);
        let c = &shrunk.config;
        assert!(shrunk.out_of_budget);
        assert_eq!(c.reset.keys().collect::<Vec<_>>(), ["nodes"]);
        assert_eq!(
            c.untried.keys().collect::<Vec<_>>(),
            ["election_tick", "snapshot_interval_bytes", "tick_ms"]
        );
        assert_eq!(fake.saved.last(), Some(c), "shrunk.json holds it");
        // Out of budget before the config step: all four untried.
        let (early, _) = shrink("n2", 3, 2);
        assert_eq!(early.config.untried.len(), 4);
        assert!(early.config.reset.is_empty());
    }

    #[test]
    fn command_line_words_are_read_and_replaced() {
        assert_eq!(flag_value(LINE, "--tick-ms"), Some("50"));
        assert_eq!(flag_value(LINE, "--cut-when-idle"), None);
        assert_eq!(flag_value("a --tick-ms", "--tick-ms"), None);
        let reset = with_flag(LINE, "--tick-ms", "100");
        assert_eq!(reset, LINE.replace("--tick-ms 50", "--tick-ms 100"));
        assert_eq!(with_flag(LINE, "--absent", "1"), LINE);
        let all = defaults();
        let names: Vec<&str> = differing(LINE, &all)
            .iter()
            .map(|(s, _)| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "nodes",
                "snapshot_interval_bytes",
                "tick_ms",
                "election_tick"
            ]
        );
        let mut faults = schedule("n2").faults;
        faults[0].params = json!({"sides": [["n1"], ["n4", "n3"]], "note": "nope"});
        assert_eq!(highest_node(&faults), Some(4));
        assert_eq!(highest_node(&[]), None);
        let mut ssh = schedule("n2");
        ssh.command_line = format!("{LINE} --runtime ssh --hosts a,b,c,d,e");
        assert!(blocked(&defaults()[0], &ssh).unwrap().contains("ssh"));
        assert_eq!(blocked(&defaults()[1], &ssh), None);
    }
}
