//! Verdicts as exit codes. A verdict stays a typed [`Validity`] until the
//! process exits; several runs combine by taking the worst (invalid is
//! worse than unknown, unknown worse than valid), as Jepsen combines
//! checkers.

use checker::verdict::{Results, Validity};

/// Exit codes (README): valid, invalid, unknown, the harness failed.
pub const EXIT_VALID: u8 = 0;
/// A checker found a violation.
pub const EXIT_INVALID: u8 = 1;
/// A checker could not decide.
pub const EXIT_UNKNOWN: u8 = 2;
/// The harness itself failed (bad flags, a cluster that would not start).
pub const EXIT_HARNESS_FAILED: u8 = 3;

/// The exit code of a verdict.
pub fn exit_code(valid: Validity) -> u8 {
    match valid {
        Validity::Valid => EXIT_VALID,
        Validity::Invalid => EXIT_INVALID,
        Validity::Unknown => EXIT_UNKNOWN,
    }
}

/// The worse of two verdicts.
pub fn worst(a: Validity, b: Validity) -> Validity {
    // `Validity` orders Invalid < Unknown < Valid.
    a.min(b)
}

/// The verdict as results.json writes it (`true`, `false`, `"unknown"`).
pub fn text(valid: Validity) -> &'static str {
    match valid {
        Validity::Valid => "true",
        Validity::Invalid => "false",
        Validity::Unknown => "\"unknown\"",
    }
}

/// Prints each checker's verdict, time and anomalies as a table.
pub fn print(results: &Results) {
    println!(
        "{:<16} {:<8} {:>10}  anomalies",
        "checker", "valid", "check_ms"
    );
    for r in &results.results {
        let anomalies: Vec<String> = r
            .anomalies
            .iter()
            .filter(|a| a.count > 0)
            .map(|a| format!("{} ×{}", a.kind, a.count))
            .collect();
        println!(
            "{:<16} {:<8} {:>10.1}  {}",
            r.checker,
            text(r.valid),
            r.check_ms,
            if anomalies.is_empty() {
                "none".into()
            } else {
                anomalies.join(", ")
            }
        );
    }
    crate::judge::raft::print_details(results);
    crate::judge::crashed::print_details(results);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_wins_over_unknown_in_either_order() {
        for runs in [
            [Validity::Unknown, Validity::Invalid],
            [Validity::Invalid, Validity::Unknown],
        ] {
            let combined = runs.into_iter().fold(Validity::Valid, worst);
            assert_eq!(exit_code(combined), EXIT_INVALID, "{runs:?}");
        }
        let combined = [Validity::Valid, Validity::Unknown]
            .into_iter()
            .fold(Validity::Valid, worst);
        assert_eq!(exit_code(combined), EXIT_UNKNOWN);
        assert_eq!(exit_code(Validity::Valid), EXIT_VALID);
    }

    #[test]
    fn verdict_text_is_what_results_json_holds() {
        for v in [Validity::Valid, Validity::Invalid, Validity::Unknown] {
            assert_eq!(serde_json::to_string(&v).unwrap(), text(v));
        }
    }
}
