//! The timeline's content, computed apart from its drawing: each node's
//! state over the run as intervals (its role, or learner, paused, down,
//! removed), and the aggregation of intervals and op completions into
//! pixel columns, so that a 30-minute run stays readable.
//!
//! A node's state at a time is, in this order: `removed` once a
//! configuration left it out after it had been a member (a removed node
//! halts; names are never reused); `down` between a fault that stops its
//! process (`kill`, `power`, `torn`, `disk-error`) and the process's next
//! `start`, and, for a node without a trace, while its sampled status went
//! unanswered; `paused` during a `pause` aimed at it; `learner` while the
//! configuration has it as a learner and it does not lead; else its last
//! role (leader, follower, candidate — pre-candidates included). Before
//! its first role (an added node not yet started) it has no state.

mod lanes;

pub use lanes::{lanes, Lane, RunFacts};

use crate::load::FaultWindow;
use crate::members::ConfigChange;
use crate::status::Sample;
use crate::trace::{ConfView, Role};

/// A node's state in one stretch of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// It led.
    Leader,
    /// It followed.
    Follower,
    /// It campaigned (pre-vote or vote).
    Candidate,
    /// A learner of the configuration.
    Learner,
    /// Paused (SIGSTOP).
    Paused,
    /// Its process was stopped (killed, powered off, disk failed).
    Down,
    /// A configuration change removed it.
    Removed,
}

impl State {
    /// Every state, in legend order.
    pub const ALL: [State; 7] = [
        State::Leader,
        State::Follower,
        State::Candidate,
        State::Learner,
        State::Paused,
        State::Down,
        State::Removed,
    ];

    /// The legend's word.
    pub fn name(self) -> &'static str {
        match self {
            State::Leader => "leader",
            State::Follower => "follower",
            State::Candidate => "candidate",
            State::Learner => "learner",
            State::Paused => "paused",
            State::Down => "down",
            State::Removed => "removed",
        }
    }

    fn from_role(role: Role) -> State {
        match role {
            Role::Leader => State::Leader,
            Role::Follower => State::Follower,
            Role::Candidate => State::Candidate,
        }
    }
}

/// A node's standing in the configuration, from one time on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A voter.
    Voter,
    /// A learner.
    Learner,
    /// Out after having been a member.
    Removed,
}

/// One stretch of a node's lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Start, s since the test began.
    pub from_s: f64,
    /// End, s.
    pub to_s: f64,
    /// The node's state throughout.
    pub state: State,
}

/// What is known of one node over the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFacts {
    /// `(t_s, role)` in time order: its trace's `role` events, or its
    /// sampled status.
    pub roles: Vec<(f64, Role)>,
    /// `(t_s, part)` in time order: its standing in the configuration.
    pub standing: Vec<(f64, Part)>,
    /// Spans its process was stopped.
    pub down: Vec<(f64, f64)>,
    /// Spans it was paused.
    pub paused: Vec<(f64, f64)>,
}

/// The value of a step function at `t`: the last step at or before it.
fn step_at<T: Copy>(steps: &[(f64, T)], t: f64) -> Option<T> {
    let after = steps.partition_point(|(at, _)| *at <= t);
    after.checked_sub(1).map(|i| steps[i].1)
}

fn within(spans: &[(f64, f64)], t: f64) -> bool {
    spans.iter().any(|(a, b)| *a <= t && t < *b)
}

/// The node's state at `t` (see the module's doc).
pub fn state_at(f: &NodeFacts, t: f64) -> Option<State> {
    let part = step_at(&f.standing, t);
    if part == Some(Part::Removed) {
        return Some(State::Removed);
    }
    if within(&f.down, t) {
        return Some(State::Down);
    }
    if within(&f.paused, t) {
        return Some(State::Paused);
    }
    let role = step_at(&f.roles, t)?;
    if part == Some(Part::Learner) && role != Role::Leader {
        return Some(State::Learner);
    }
    Some(State::from_role(role))
}

/// The node's lane over `[0, end_s]`: maximal stretches of one state.
pub fn segments(f: &NodeFacts, end_s: f64) -> Vec<Segment> {
    let mut cuts: Vec<f64> = f
        .roles
        .iter()
        .map(|r| r.0)
        .chain(f.standing.iter().map(|s| s.0))
        .chain(f.down.iter().chain(&f.paused).flat_map(|(a, b)| [*a, *b]))
        .filter(|t| *t > 0.0 && *t < end_s)
        .collect();
    cuts.push(0.0);
    cuts.push(end_s);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut out: Vec<Segment> = Vec::new();
    for w in cuts.windows(2) {
        let Some(state) = state_at(f, w[0]) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.state == state && last.to_s == w[0] => last.to_s = w[1],
            _ => out.push(Segment {
                from_s: w[0],
                to_s: w[1],
                state,
            }),
        }
    }
    out
}

/// Faults that stop a node's process until it is started again (a
/// corruption only when done to a stopped node; a wipe restarts its node
/// at once, a full disk may stop it).
const STOPPING: [&str; 6] = ["kill", "power", "torn", "disk-error", "disk-full", "wipe"];

/// Whether the window stopped its targets' processes.
fn stops(w: &FaultWindow) -> bool {
    STOPPING.contains(&w.fault.as_str()) || (w.fault == "corrupt" && w.start["node"] == "stopped")
}

/// Spans the node's process was stopped: from each stopping fault aimed
/// at it to its next `start` (`starts_s`, from its trace), or to the
/// window's end (the heal restarts it) when no start follows.
pub fn down_spans(windows: &[FaultWindow], node: &str, starts_s: &[f64]) -> Vec<(f64, f64)> {
    windows
        .iter()
        .filter(|w| stops(w) && w.targets.iter().any(|t| t == node))
        .map(|w| {
            let restart = starts_s.iter().copied().find(|s| *s > w.start_s);
            (w.start_s, restart.unwrap_or(w.end_s))
        })
        .collect()
}

/// Spans of `pause` windows aimed at the node.
pub fn paused_spans(windows: &[FaultWindow], node: &str) -> Vec<(f64, f64)> {
    windows
        .iter()
        .filter(|w| w.fault == "pause" && w.targets.iter().any(|t| t == node))
        .map(|w| (w.start_s, w.end_s))
        .collect()
}

/// Spans the node's sampled status went unanswered: from a `null` sample
/// to its next answered one (or the last sample).
pub fn unanswered_spans(samples: &[Sample], node: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut open: Option<f64> = None;
    let mut last = 0.0;
    for s in samples.iter().filter(|s| s.node == node) {
        last = s.t_s;
        match (&s.status, open) {
            (None, None) => open = Some(s.t_s),
            (Some(_), Some(from)) => {
                out.push((from, s.t_s));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        out.push((from, last.max(from)));
    }
    out
}

/// The node's roles from its sampled status (runs without a trace): its
/// `role`, or, where the status has none (etcd's, translated), leader
/// when the `leader` it names is its own `id` and follower otherwise.
pub fn sampled_roles(samples: &[Sample], node: &str, id: Option<u64>) -> Vec<(f64, Role)> {
    let role = |status: &serde_json::Value| match status["role"].as_str() {
        Some(word) => Role::parse(word),
        None => {
            let leader = status["leader"].as_u64()?;
            Some(if Some(leader) == id {
                Role::Leader
            } else {
                Role::Follower
            })
        }
    };
    samples
        .iter()
        .filter(|s| s.node == node)
        .filter_map(|s| Some((s.t_s, role(s.status.as_ref()?)?)))
        .collect()
}

/// A node's standing, sticky once removed: `Removed` only after it was a
/// member, never undone (names are not reused).
fn push_part(steps: &mut Vec<(f64, Part)>, member_yet: &mut bool, t: f64, part: Option<Part>) {
    let part = match part {
        Some(p) => {
            *member_yet = true;
            p
        }
        None if *member_yet => Part::Removed,
        None => return,
    };
    if steps.last().is_some_and(|l| l.1 == Part::Removed) {
        return;
    }
    if steps.last().map(|l| l.1) != Some(part) {
        steps.push((t, part));
    }
}

/// The node's standing in time order, from its own applied configurations
/// (`confs`, from its trace, when it has one and knows its id) and from
/// the `member` nemesis's configurations (`changes`), merged by time.
pub fn standing(
    node: &str,
    id: Option<u64>,
    confs: &[ConfView],
    changes: &[ConfigChange],
) -> Vec<(f64, Part)> {
    let mut views: Vec<(f64, Option<Part>)> = Vec::new();
    if let Some(id) = id {
        views.extend(confs.iter().map(|c| {
            let part = if c.voters.contains(&id) {
                Some(Part::Voter)
            } else if c.learners.contains(&id) {
                Some(Part::Learner)
            } else {
                None
            };
            (c.t_s, part)
        }));
    }
    let named = |c: &crate::members::Config| {
        if c.voters.iter().any(|v| v == node) {
            Some(Part::Voter)
        } else if c.learners.iter().any(|v| v == node) {
            Some(Part::Learner)
        } else {
            None
        }
    };
    let member = changes.iter().filter(|c| c.f == "member");
    if let Some(first) = member.clone().find_map(|c| c.before.as_ref()) {
        views.push((f64::NEG_INFINITY, named(first)));
    }
    for c in member {
        if let (Some(end), Some(after)) = (c.end_s, &c.after) {
            views.push((end, named(after)));
        }
    }
    views.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut steps = Vec::new();
    let mut member_yet = false;
    for (t, part) in views {
        push_part(&mut steps, &mut member_yet, t, part);
    }
    steps
}

/// Per pixel column of `[x0, x1)` cut into `n`: the state that covers
/// more of the column than any other, `None` where states cover less than
/// half of it (a node not started yet).
pub fn columns(segments: &[Segment], (x0, x1): (f64, f64), n: usize) -> Vec<Option<State>> {
    let width = (x1 - x0) / n.max(1) as f64;
    let mut cover = vec![[0.0f64; State::ALL.len()]; n];
    for s in segments {
        let slot = State::ALL
            .iter()
            .position(|x| *x == s.state)
            .expect("listed");
        let first = (((s.from_s - x0) / width).floor().max(0.0) as usize).min(n);
        let last = (((s.to_s - x0) / width).ceil().max(0.0) as usize).min(n);
        for (i, c) in cover.iter_mut().enumerate().take(last).skip(first) {
            let (a, b) = (x0 + i as f64 * width, x0 + (i + 1) as f64 * width);
            c[slot] += (s.to_s.min(b) - s.from_s.max(a)).max(0.0);
        }
    }
    cover
        .iter()
        .map(|c| {
            let (slot, most) =
                c.iter().enumerate().fold(
                    (0, 0.0),
                    |best, (i, v)| if *v > best.1 { (i, *v) } else { best },
                );
            let covered: f64 = c.iter().sum();
            (most > 0.0 && covered > width / 2.0).then_some(State::ALL[slot])
        })
        .collect()
}

/// Per pixel column of `[x0, x1)` cut into `n`: how many of `times` fall
/// in it.
pub fn counts(times: impl Iterator<Item = f64>, (x0, x1): (f64, f64), n: usize) -> Vec<u32> {
    let mut out = vec![0u32; n];
    let width = (x1 - x0) / n.max(1) as f64;
    for t in times {
        if t >= x0 && t < x1 {
            out[(((t - x0) / width) as usize).min(n - 1)] += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Role::{Candidate, Follower, Leader};

    fn seg(from_s: f64, to_s: f64, state: State) -> Segment {
        Segment {
            from_s,
            to_s,
            state,
        }
    }

    fn window(fault: &str, node: &str, start_s: f64, end_s: f64) -> FaultWindow {
        FaultWindow {
            fault: fault.into(),
            targets: vec![node.into()],
            start_s,
            end_s,
            label: String::new(),
            start: serde_json::Value::Null,
        }
    }

    /// n1 leads from before the test, is killed at 10 s, starts again at
    /// 11.2 s (the window ends at 15 s: the trace's start wins), follows,
    /// campaigns and leads again; paused 20–22 s; removed at 25 s.
    #[test]
    fn roles_faults_and_removal_become_intervals() {
        let facts = NodeFacts {
            roles: vec![
                (-2.0, Follower),
                (-1.5, Leader),
                (11.2, Follower),
                (16.0, Candidate),
                (16.3, Leader),
            ],
            standing: vec![(f64::NEG_INFINITY, Part::Voter), (25.0, Part::Removed)],
            down: down_spans(&[window("kill", "n1", 10.0, 15.0)], "n1", &[-2.0, 11.2]),
            paused: paused_spans(
                &[
                    window("pause", "n1", 20.0, 22.0),
                    window("pause", "n2", 1.0, 2.0),
                ],
                "n1",
            ),
        };
        assert_eq!(facts.down, vec![(10.0, 11.2)]);
        assert_eq!(
            segments(&facts, 30.0),
            vec![
                seg(0.0, 10.0, State::Leader),
                seg(10.0, 11.2, State::Down),
                seg(11.2, 16.0, State::Follower),
                seg(16.0, 16.3, State::Candidate),
                seg(16.3, 20.0, State::Leader),
                seg(20.0, 22.0, State::Paused),
                seg(22.0, 25.0, State::Leader),
                seg(25.0, 30.0, State::Removed),
            ]
        );
    }

    /// An added node: nothing before it starts, a learner until promoted,
    /// a leader is never drawn as a learner; without a trace's start, a
    /// kill lasts until the window's end.
    #[test]
    fn an_added_node_is_a_learner_until_promoted() {
        let confs = [
            ConfView {
                t_s: 5.0,
                voters: vec![1, 2, 3],
                learners: vec![],
            },
            ConfView {
                t_s: 6.0,
                voters: vec![1, 2, 3],
                learners: vec![4],
            },
            ConfView {
                t_s: 9.0,
                voters: vec![1, 2, 3, 4],
                learners: vec![],
            },
        ];
        let standing = standing("n4", Some(4), &confs, &[]);
        assert_eq!(standing, vec![(6.0, Part::Learner), (9.0, Part::Voter)]);
        let facts = NodeFacts {
            roles: vec![(5.0, Follower), (12.0, Leader)],
            standing,
            down: down_spans(&[window("power", "n4", 14.0, 18.0)], "n4", &[]),
            paused: vec![],
        };
        assert_eq!(
            segments(&facts, 20.0),
            vec![
                seg(5.0, 6.0, State::Follower),
                seg(6.0, 9.0, State::Learner),
                seg(9.0, 12.0, State::Follower),
                seg(12.0, 14.0, State::Leader),
                seg(14.0, 18.0, State::Down),
                seg(18.0, 20.0, State::Leader),
            ]
        );
    }

    #[test]
    fn the_nemesis_configurations_remove_a_node_for_good() {
        let config = |voters: &[&str]| crate::members::Config {
            voters: voters.iter().map(|s| s.to_string()).collect(),
            learners: vec![],
        };
        let change = |end_s, before: &[&str], after: &[&str]| ConfigChange {
            f: "member".into(),
            change: "replace".into(),
            targets: vec![],
            start_s: end_s - 1.0,
            end_s: Some(end_s),
            before: Some(config(before)),
            after: Some(config(after)),
            committed: Some(true),
            leader: None,
            error: None,
        };
        let changes = [
            change(4.0, &["n1", "n2", "n3"], &["n1", "n3", "n4"]),
            change(8.0, &["n1", "n3", "n4"], &["n1", "n2", "n3"]),
        ];
        assert_eq!(
            standing("n2", None, &[], &changes),
            vec![(f64::NEG_INFINITY, Part::Voter), (4.0, Part::Removed)],
            "removed stays removed"
        );
        assert_eq!(
            standing("n4", None, &[], &changes),
            vec![(4.0, Part::Voter), (8.0, Part::Removed)]
        );
    }

    #[test]
    fn unanswered_samples_and_sampled_roles() {
        let s = |t_s, node: &str, role: Option<&str>| Sample {
            t_s,
            node: node.into(),
            status: role.map(|r| serde_json::json!({"role": r})),
        };
        let samples = [
            s(1.0, "n1", Some("leader")),
            s(1.0, "n2", Some("follower")),
            s(1.25, "n1", None),
            s(1.5, "n1", None),
            s(1.75, "n1", Some("follower")),
            s(2.0, "n1", None),
        ];
        assert_eq!(
            unanswered_spans(&samples, "n1"),
            vec![(1.25, 1.75), (2.0, 2.0)]
        );
        assert_eq!(
            sampled_roles(&samples, "n1", Some(1)),
            vec![(1.0, Leader), (1.75, Follower)]
        );
        // etcd's status, translated, names the leader and no role.
        let etcd = |t_s, leader: u64| Sample {
            t_s,
            node: "n2".into(),
            status: Some(serde_json::json!({"leader": leader, "height": 5})),
        };
        assert_eq!(
            sampled_roles(&[etcd(1.0, 1), etcd(2.0, 2)], "n2", Some(2)),
            vec![(1.0, Follower), (2.0, Leader)]
        );
    }

    #[test]
    fn columns_take_the_majority_and_counts_bin_times() {
        let lane = [
            seg(0.0, 2.6, State::Leader),
            seg(2.6, 2.9, State::Candidate),
            seg(2.9, 6.0, State::Follower),
        ];
        // Columns of 2 s over 0..8: the last is uncovered.
        assert_eq!(
            columns(&lane, (0.0, 8.0), 4),
            vec![
                Some(State::Leader),
                Some(State::Follower),
                Some(State::Follower),
                None
            ]
        );
        assert_eq!(
            counts([0.5, 1.9, 2.0, 7.99, 8.0, -1.0].into_iter(), (0.0, 8.0), 4),
            vec![2, 1, 0, 1]
        );
    }
}
