//! The run's report: plots and `index.html` rendered from its store by
//! the reports crate, after a run and on `harness check`.

use std::path::Path;

/// Renders the run's report (plots and index.html), warning (not failing)
/// when it cannot.
pub fn report(dir: &Path) {
    match reports::render(dir) {
        Ok(_) => eprintln!("report: {}", dir.join("index.html").display()),
        Err(e) => tracing::warn!(error = %e, dir = %dir.display(), "could not render the report"),
    }
}
