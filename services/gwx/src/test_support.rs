//! What the unit tests share: the shipped inventory and the golden files in `test_data/`.

use std::path::Path;

use crate::inventory::Inventory;

/// The inventory shipped in the repository (`config/gwx/grid.toml`).
pub fn shipped() -> Inventory {
    Inventory::load(&shipped_path()).unwrap()
}

/// The shipped inventory's file.
pub fn shipped_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/gwx/grid.toml")
}

/// Asserts that `actual` equals `test_data/NAME` (`BLESS=1` rewrites it).
pub fn golden(name: &str, actual: &str) {
    testbed::golden::check(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test_data")
            .join(name),
        actual,
    );
}
