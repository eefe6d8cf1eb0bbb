//! `harness soak --steer` (issue 29; Mallory's feedback, in its simplest
//! form): each turn aims at something the soak's summed coverage has not
//! reached yet — a Raft situation (`judge::raft::CoverageSum`) or a crash
//! point (`crash_points.rs`) — instead of the rotation's next turn. The gap
//! is drawn from the soak's seeded stream among those still open, and
//! named in the turn's row; the turn's faults, overlap, snapshot interval
//! and the crash points the `crash` fault prefers are what drives the
//! cluster there. With nothing left open, the rotation resumes.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// A small snapshot interval, for points and situations that need
/// snapshots and compactions often.
const SMALL_SNAPSHOTS: u64 = 8 << 10;

/// One steered turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steered {
    /// The gap aimed at: a Raft situation or a crash point.
    pub gap: String,
    /// `--nemesis`.
    pub nemesis: &'static str,
    /// `--nemesis-overlap` (2: the crash armed while the other fault
    /// drives the cluster to it).
    pub overlap: usize,
    /// `--snapshot-interval-bytes` pinned, when the gap needs snapshots.
    pub snapshot_interval_bytes: Option<u64>,
    /// The crash points the `crash` fault arms first.
    pub crash_points: Vec<String>,
}

/// What drives the cluster to a crash point: the faults beside `crash`,
/// and whether it needs frequent snapshots.
fn for_point(point: &str) -> (&'static str, usize, bool) {
    let family = point.split('.').take(2).collect::<Vec<_>>().join(".");
    match family.as_str() {
        "snapshot.install" => ("lag,crash", 2, true),
        "conf.apply" => ("member,crash", 2, false),
        "wal.hard-state" => ("kill,crash", 2, false),
        "wal.append" => ("crash", 1, false),
        // Snapshots taken: block store, manifest, segments, compaction.
        _ => ("crash", 1, true),
    }
}

/// What drives the cluster to a Raft situation.
fn for_situation(situation: &str) -> (&'static str, usize, bool) {
    match situation {
        "snapshots_sent" | "snapshots_installed" => ("lag", 1, true),
        "conf_changes" => ("member", 1, false),
        "crash_points_fired" => ("crash", 1, true),
        "snapshots_taken" | "compactions" => ("kill", 1, true),
        "check_quorum_step_downs" | "pre_votes_lost" => ("partition", 1, false),
        "restarts" | "restarts_with_uncommitted_tail" => ("kill", 1, false),
        "follower_truncations"
        | "truncated_entries"
        | "truncation_depth_max"
        | "earlier_term_commits" => ("partition,kill", 2, false),
        _ => ("partition,kill,pause,clock", 2, false),
    }
}

/// The next steered turn: a gap drawn among the situations and crash
/// points not reached yet; `None` when every one has been.
pub fn steer(situations: &[&str], points: &[&str], rng: &mut ChaCha8Rng) -> Option<Steered> {
    let gaps: Vec<(&str, bool)> = situations
        .iter()
        .map(|s| (*s, false))
        .chain(points.iter().map(|p| (*p, true)))
        .collect();
    let (gap, is_point) = *gaps.choose(rng)?;
    let (nemesis, overlap, small) = if is_point {
        for_point(gap)
    } else {
        for_situation(gap)
    };
    // Points of the same family are aimed at together: one run can reach
    // several.
    let family = gap.rsplit_once('.').map_or(gap, |(f, _)| f);
    let crash_points = points
        .iter()
        .filter(|p| is_point && p.starts_with(family))
        .map(|p| p.to_string())
        .collect();
    Some(Steered {
        gap: gap.to_string(),
        nemesis,
        overlap,
        snapshot_interval_bytes: small.then_some(SMALL_SNAPSHOTS),
        crash_points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_turn_aims_at_a_gap_drawn_from_the_seed_and_nothing_open_resumes_the_rotation() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(steer(&[], &[], &mut rng), None);
        let points = [
            "snapshot.install.before-save",
            "snapshot.install.after-log-rewrite",
        ];
        let s = steer(&[], &points, &mut rng).unwrap();
        assert_eq!((s.nemesis, s.overlap), ("lag,crash", 2));
        assert_eq!(s.crash_points.len(), 2, "the family together");
        assert_eq!(s.snapshot_interval_bytes, Some(SMALL_SNAPSHOTS));
        let s = steer(&["conf_changes"], &[], &mut rng).unwrap();
        assert_eq!((s.nemesis, s.crash_points.len()), ("member", 0));
        let s = steer(&["crash_points_fired"], &[], &mut rng).unwrap();
        assert_eq!(s.nemesis, "crash");
        let draws = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..5)
                .map(|_| {
                    steer(&["restarts", "conf_changes"], &points, &mut rng)
                        .unwrap()
                        .gap
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(9), draws(9), "seeded");
    }
}
