//! The soak's rotation: each system's turns (`System::rotation`), the
//! systems interleaved so that a short soak already sees each of them.

use crate::sut::{Sut, System};

/// The soak's turns, (sut, workload, nemesis), the systems interleaved so
/// that a short soak already sees each of them.
pub fn rotation(suts: &[String]) -> Vec<(String, &'static str, &'static str)> {
    let lists: Vec<(&String, &[(&str, &str)])> = suts
        .iter()
        .map(|s| {
            let list: &[(&str, &str)] = match s.parse::<Sut>() {
                Ok(sut) => sut.rotation(),
                Err(_) => &[],
            };
            (s, list)
        })
        .collect();
    let longest = lists.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let mut turns = Vec::new();
    for i in 0..longest {
        for (sut, list) in &lists {
            if let Some((w, n)) = list.get(i) {
                turns.push(((*sut).clone(), *w, *n));
            }
        }
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_interleaves_systems_and_never_clocks_etcd() {
        let turns = rotation(&["ordeal".into(), "etcd".into()]);
        assert_eq!(turns.len(), 18);
        assert_eq!(turns[0].0, "ordeal");
        assert_eq!(turns[1].0, "etcd");
        assert!(turns
            .iter()
            .all(|(s, w, n)| s != "etcd" || (*w == "register" && *n != "clock" && *n != "lag")));
        assert!(rotation(&[]).is_empty());
    }
}
