//! The configuration over time (issue 14), from the history's `member`
//! and `transfer` nemesis events (`docs/store.md`): each change with the
//! configuration before and after it, and, at any time, which nodes are
//! members and which a committed change removed. A history without
//! `member` events has no timeline: every node is a member throughout.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// The nodes in a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Voters, as the nemesis recorded them.
    pub voters: Vec<String>,
    /// Learners (added, not yet promoted).
    pub learners: Vec<String>,
}

impl Config {
    fn parse(v: &Value) -> Option<Config> {
        let names = |k: &str| -> Option<Vec<String>> {
            v.get(k)?
                .as_array()?
                .iter()
                .map(|x| x.as_str().map(String::from))
                .collect()
        };
        Some(Config {
            voters: names("voters")?,
            learners: names("learners").unwrap_or_default(),
        })
    }

    /// Voters and learners.
    pub fn members(&self) -> BTreeSet<String> {
        self.voters.iter().chain(&self.learners).cloned().collect()
    }

    /// `n1 n2 n3 (+n4)`: voters, then learners in brackets.
    pub fn text(&self) -> String {
        let mut out = self.voters.join(" ");
        if !self.learners.is_empty() {
            out.push_str(&format!(" (+{})", self.learners.join(" +")));
        }
        out
    }
}

/// One `member` or `transfer` nemesis window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigChange {
    /// `member` or `transfer`.
    pub f: String,
    /// `add`, `remove` or `replace` (`member`); `transfer` for a transfer.
    pub change: String,
    /// The nodes it is aimed at.
    pub targets: Vec<String>,
    /// Its start, s since the test began.
    pub start_s: f64,
    /// Its end, s (`null`: the history ends first).
    pub end_s: Option<f64>,
    /// The configuration before (`member`).
    pub before: Option<Config>,
    /// The configuration after (`member`, from its end event).
    pub after: Option<Config>,
    /// Whether the change committed (`member`; `null` when not said).
    pub committed: Option<bool>,
    /// The leader after a transfer, or the leader it moved from before a
    /// `member` change that removes the leader (`null` when none).
    pub leader: Option<String>,
    /// Why it did not commit, when the end event says.
    pub error: Option<String>,
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

/// Collects the changes from nemesis events as a history is read.
#[derive(Debug, Default)]
pub struct Collector {
    open: Vec<ConfigChange>,
    done: Vec<ConfigChange>,
}

impl Collector {
    /// Takes one nemesis event (others than `member` / `transfer` are
    /// ignored).
    pub fn event(&mut self, f: &str, t: f64, v: &Value) {
        if f != "member" && f != "transfer" {
            return;
        }
        match v["phase"].as_str() {
            Some("start") => self.open.push(ConfigChange {
                f: f.to_string(),
                change: v["change"].as_str().unwrap_or(f).to_string(),
                targets: names(&v["targets"]),
                start_s: t,
                end_s: None,
                before: Config::parse(&v["before"]),
                after: None,
                committed: None,
                leader: v["from"].as_str().map(String::from),
                error: None,
            }),
            Some("end") => {
                let Some(i) = self.open.iter().position(|c| c.f == f) else {
                    return;
                };
                let mut c = self.open.remove(i);
                c.end_s = Some(t);
                c.after = Config::parse(&v["after"]);
                c.committed = v["committed"].as_bool();
                if f == "transfer" {
                    c.leader = v["leader"].as_str().map(String::from);
                }
                c.error = v["error"].as_str().map(String::from);
                self.done.push(c);
            }
            _ => {}
        }
    }

    /// Every change, in start order (those never ended included).
    pub fn finish(mut self) -> Vec<ConfigChange> {
        self.done.append(&mut self.open);
        self.done.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        self.done
    }
}

/// Who is a member at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Voters and learners.
    pub members: BTreeSet<String>,
    /// Nodes that were members and are no longer.
    pub removed: BTreeSet<String>,
}

/// The configurations in force up to `t_s`, in order: the first `member`
/// change's `before`, then each ended change's `after` (the configuration
/// the nemesis saw at its end, committed or not). `None` for a history
/// without `member` changes.
fn configs_until(changes: &[ConfigChange], t_s: f64) -> Option<Vec<&Config>> {
    let member = || changes.iter().filter(|c| c.f == "member");
    let first = member().find_map(|c| c.before.as_ref())?;
    let ended = member().filter_map(|c| match (c.end_s, &c.after) {
        (Some(end), Some(after)) if end <= t_s => Some(after),
        _ => None,
    });
    Some(std::iter::once(first).chain(ended).collect())
}

/// Who is a member at `t_s`, and who was and is no longer (see
/// [`configs_until`]).
pub fn standing_at(changes: &[ConfigChange], t_s: f64) -> Option<Standing> {
    let configs = configs_until(changes, t_s)?;
    let members = configs.last()?.members();
    let ever: BTreeSet<String> = configs.iter().flat_map(|c| c.members()).collect();
    let removed = ever.difference(&members).cloned().collect();
    Some(Standing { members, removed })
}

/// The configuration in force at `t_s` (see [`configs_until`]), voters and
/// learners apart; `None` without `member` changes.
pub fn config_at(changes: &[ConfigChange], t_s: f64) -> Option<Config> {
    configs_until(changes, t_s)?.last().map(|c| (*c).clone())
}

/// A node's part in one stretch of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Voter,
    Learner,
    Out,
}

/// The configuration over time as HTML bars, one row per node that was
/// ever a member: green while a voter, light green while a learner, grey
/// once out (removed, or not yet added). Nothing without `member` changes.
pub fn timeline(changes: &[ConfigChange], duration_s: f64, esc: fn(&str) -> String) -> String {
    let Some(first) = config_at(changes, 0.0) else {
        return String::new();
    };
    let mut cuts: Vec<f64> = changes
        .iter()
        .filter(|c| c.f == "member")
        .filter_map(|c| c.end_s)
        .collect();
    cuts.push(0.0);
    cuts.push(duration_s.max(1e-9));
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let configs: Vec<(f64, f64, Config)> = cuts
        .windows(2)
        .filter_map(|w| Some((w[0], w[1], config_at(changes, w[0])?)))
        .collect();
    let mut nodes: Vec<String> = first.members().into_iter().collect();
    for (_, _, c) in &configs {
        for n in c.members() {
            if !nodes.contains(&n) {
                nodes.push(n);
            }
        }
    }
    let span = duration_s.max(1e-9);
    let mut out = String::from("<div class=\"timeline\" style=\"font-size:12px\">");
    for node in &nodes {
        out.push_str(&format!("<div style=\"display:flex;align-items:center;margin:2px 0\"><span style=\"width:3em\">{}</span><div style=\"position:relative;flex:1;height:14px;background:#eee\">", esc(node)));
        let mut spans: Vec<(f64, f64, Part)> = Vec::new();
        for (from, to, c) in &configs {
            let part = if c.voters.contains(node) {
                Part::Voter
            } else if c.learners.contains(node) {
                Part::Learner
            } else {
                Part::Out
            };
            match spans.last_mut() {
                Some(last) if last.2 == part => last.1 = *to,
                _ => spans.push((*from, *to, part)),
            }
        }
        for (from, to, part) in spans {
            let colour = match part {
                Part::Voter => "#1e8c3c",
                Part::Learner => "#8fd19e",
                Part::Out => continue,
            };
            out.push_str(&format!(
                "<div title=\"{from:.1}–{to:.1} s\" style=\"position:absolute;left:{:.2}%;width:{:.2}%;height:100%;background:{colour}\"></div>",
                from / span * 100.0,
                (to - from) / span * 100.0
            ));
        }
        out.push_str("</div></div>");
    }
    out + "<p>green: voter · light green: learner · grey: not in the configuration</p></div>"
}

/// The page's table of configuration changes (nothing without them).
pub fn table(changes: &[ConfigChange], esc: fn(&str) -> String) -> String {
    if changes.is_empty() {
        return String::new();
    }
    let mut out = String::from("<table><tr><th>start s</th><th>end s</th><th>change</th><th>targets</th><th>before</th><th>after</th><th>committed</th><th>leader</th><th>error</th></tr>");
    for c in changes {
        let opt = |v: Option<&Config>| v.map_or("—".into(), Config::text);
        out.push_str(&format!(
            "<tr><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.start_s,
            c.end_s.map_or("never".into(), |e| format!("{e:.1}")),
            esc(&c.change),
            esc(&c.targets.join(", ")),
            esc(&opt(c.before.as_ref())),
            esc(&opt(c.after.as_ref())),
            c.committed.map_or("—", |b| if b { "yes" } else { "NO" }),
            esc(c.leader.as_deref().unwrap_or("—")),
            esc(c.error.as_deref().unwrap_or("")),
        ));
    }
    out + "</table>"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect(events: &[(&str, f64, Value)]) -> Vec<ConfigChange> {
        let mut c = Collector::default();
        for (f, t, v) in events {
            c.event(f, *t, v);
        }
        c.finish()
    }

    fn replace_then_transfer() -> Vec<ConfigChange> {
        collect(&[
            ("kill", 1.0, json!({"phase": "start", "targets": ["n1"]})),
            (
                "member",
                2.0,
                json!({"phase": "start", "change": "replace", "targets": ["n2", "n4"], "add": ["n4"], "remove": ["n2"], "leader": false, "before": {"voters": ["n1", "n2", "n3"], "learners": []}}),
            ),
            (
                "member",
                4.0,
                json!({"phase": "end", "change": "replace", "targets": ["n2", "n4"], "committed": true, "after": {"voters": ["n1", "n3", "n4"], "learners": []}}),
            ),
            (
                "transfer",
                5.0,
                json!({"phase": "start", "targets": ["n3"], "from": "n1"}),
            ),
            (
                "transfer",
                5.5,
                json!({"phase": "end", "targets": ["n3"], "leader": "n3"}),
            ),
            (
                "member",
                6.0,
                json!({"phase": "start", "change": "add", "targets": ["n5"], "add": ["n5"], "remove": [], "leader": false, "before": {"voters": ["n1", "n3", "n4"], "learners": []}}),
            ),
            (
                "member",
                7.0,
                json!({"phase": "end", "change": "add", "targets": ["n5"], "committed": false, "error": "http 503", "after": {"voters": ["n1", "n3", "n4"], "learners": []}}),
            ),
            (
                "member",
                8.0,
                json!({"phase": "start", "change": "remove", "targets": ["n1"], "before": {"voters": ["n1", "n3", "n4"], "learners": []}}),
            ),
        ])
    }

    #[test]
    fn changes_are_paired_in_start_order_with_their_configurations() {
        let c = replace_then_transfer();
        assert_eq!(c.len(), 4, "{c:?}");
        assert_eq!(c[0].change, "replace");
        assert_eq!((c[0].start_s, c[0].end_s), (2.0, Some(4.0)));
        assert_eq!(c[0].before.as_ref().unwrap().text(), "n1 n2 n3");
        assert_eq!(c[0].after.as_ref().unwrap().text(), "n1 n3 n4");
        assert_eq!(c[0].committed, Some(true));
        assert_eq!(
            (c[1].f.as_str(), c[1].change.as_str()),
            ("transfer", "transfer")
        );
        assert_eq!(c[1].leader.as_deref(), Some("n3"));
        assert_eq!(c[2].committed, Some(false));
        assert_eq!(c[2].error.as_deref(), Some("http 503"));
        assert_eq!(c[3].end_s, None, "never ended");
        let page = table(&c, |s| s.to_string());
        assert!(
            page.contains("<td>n1 n2 n3</td><td>n1 n3 n4</td><td>yes</td>"),
            "{page}"
        );
        assert!(page.contains("never"));
        assert_eq!(table(&[], |s| s.to_string()), "");
    }

    #[test]
    fn the_timeline_has_a_row_per_node_ever_a_member() {
        let c = replace_then_transfer();
        assert_eq!(config_at(&c, 4.5).unwrap().text(), "n1 n3 n4");
        let html = timeline(&c, 10.0, |s| s.to_string());
        for n in ["n1", "n2", "n3", "n4"] {
            assert!(
                html.contains(&format!("<span style=\"width:3em\">{n}</span>")),
                "{n}: {html}"
            );
        }
        // n2 a voter from 0 to 4 s (40 %), n4 from 4 s to the end.
        assert!(html.contains("left:0.00%;width:40.00%"), "{html}");
        assert!(html.contains("left:40.00%;width:60.00%"), "{html}");
        assert!(
            html.contains("left:0.00%;width:100.00%"),
            "n1 throughout: {html}"
        );
        assert_eq!(timeline(&[], 10.0, |s| s.to_string()), "");
    }

    #[test]
    fn standing_follows_the_ended_changes() {
        let c = replace_then_transfer();
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let at = |t| standing_at(&c, t).unwrap();
        assert_eq!(at(1.0).members, set(&["n1", "n2", "n3"]));
        assert!(at(1.0).removed.is_empty());
        assert_eq!(at(4.0).members, set(&["n1", "n3", "n4"]));
        assert_eq!(at(4.0).removed, set(&["n2"]));
        assert_eq!(
            at(100.0).removed,
            set(&["n2"]),
            "the open removal is not counted"
        );
        assert_eq!(standing_at(&[], 1.0), None);
        let learner = Config {
            voters: vec!["n1".into()],
            learners: vec!["n4".into()],
        };
        assert_eq!(learner.text(), "n1 (+n4)");
    }
}
