//! Shards of a soak: `--shard I/N` gives one of N runners its part of the
//! rotation, so that N soaks together run every turn, none twice, and the
//! split never depends on time, machine or seed.

use anyhow::{bail, Context};

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, `1..=count`.
    pub index: usize,
    /// How many shards split the rotation.
    pub count: usize,
}

/// Shards at most (a CI matrix is far smaller).
pub const SHARDS_MAX: usize = 256;

impl Shard {
    /// Parses `I/N` with `1 <= I <= N <= SHARDS_MAX`.
    pub fn parse(text: &str) -> anyhow::Result<Shard> {
        let (i, n) = text
            .split_once('/')
            .with_context(|| format!("--shard: `{text}` is not I/N (e.g. 3/8)"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .with_context(|| format!("--shard: `{s}` in `{text}` is not a number"))
        };
        let (index, count) = (number(i)?, number(n)?);
        if count == 0 || count > SHARDS_MAX || index == 0 || index > count {
            bail!("--shard: `{text}` needs 1 <= I <= N <= {SHARDS_MAX}");
        }
        Ok(Shard { index, count })
    }

    /// Whether turn `t` (0-based) of the rotation is this shard's.
    pub fn owns(self, t: usize) -> bool {
        t % self.count == self.index - 1
    }

    /// This shard's turns, in rotation order; refused when it has none.
    pub fn select<T: Clone>(self, turns: &[T]) -> anyhow::Result<Vec<T>> {
        let mine: Vec<T> = (0..turns.len())
            .filter(|t| self.owns(*t))
            .map(|t| turns[t].clone())
            .collect();
        if mine.is_empty() {
            bail!(
                "--shard {self}: the rotation has {} turns, too few for {} shards",
                turns.len(),
                self.count
            );
        }
        Ok(mine)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::rotation::rotation;

    #[test]
    fn soak_shards_split_the_rotation_disjoint_covering_and_stable() {
        let turns = rotation(&["ordeal".into(), "etcd".into()]);
        for count in 1..=turns.len() {
            let mut seen = Vec::new();
            for index in 1..=count {
                let shard = Shard::parse(&format!("{index}/{count}")).unwrap();
                let mine = shard.select(&turns).unwrap();
                // Stable: the same shard always gets the same turns.
                assert_eq!(mine, shard.select(&turns).unwrap());
                seen.extend(mine);
            }
            // Covering and disjoint: every turn exactly once.
            let mut expected = turns.clone();
            seen.sort();
            expected.sort();
            assert_eq!(seen, expected, "{count} shards");
        }
        // The nightly's split: shard 3 of 8 takes turns 2, 10, 18, ….
        let third = Shard::parse("3/8").unwrap().select(&turns).unwrap();
        let want: Vec<_> = turns.iter().skip(2).step_by(8).cloned().collect();
        assert_eq!(third, want);
        let n = turns.len();
        assert!(Shard::parse(&format!("1/{}", n + 1))
            .unwrap()
            .select(&turns)
            .is_ok());
        let last = format!("{0}/{0}", n + 1);
        let error = Shard::parse(&last).unwrap().select(&turns).unwrap_err();
        assert!(error.to_string().contains("too few"), "{error}");
        for bad in ["0/8", "9/8", "3", "a/8", "1/0", "1/1000"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
