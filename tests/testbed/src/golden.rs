//! Golden files: expected output (a rendered ruleset, a sysctl file, a kernel listing)
//! kept in the repository next to the tests, so a change in what we generate shows up
//! as a reviewable diff. `BLESS=1` rewrites them from the current output.

use std::path::Path;

/// Asserts that `actual` equals the golden file at `path`; with `BLESS=1` in the
/// environment, writes `actual` there first.
pub fn check(path: &Path, actual: &str) {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, actual)
            .unwrap_or_else(|e| panic!("cannot write golden file {}: {e}", path.display()));
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("golden file {}: {e} (BLESS=1 creates it)", path.display()));
    assert!(
        expected == actual,
        "{} differs from the output (BLESS=1 rewrites it; review the diff):\n{actual}",
        path.display()
    );
}
