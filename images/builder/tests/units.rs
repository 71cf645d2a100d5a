//! The Nix files and the systemd units of the non-Nix images, checked without Nix's
//! store, daemon or binary cache (none of which CI has):
//!
//! - every `.nix` file of the repository parses (`nix-instantiate --parse`, Debian's
//!   nix-bin);
//! - `images/systemd/*.service|*.timer` hold exactly the settings `nix/units.nix` gives
//!   with its Debian defaults (evaluated with `nix-instantiate --eval --strict --json
//!   nix/render-units.nix` against the `dummy://` store, so nothing is written), section
//!   by section and key by key; so do the sysusers.d and modules-load.d files;
//! - `images/systemd/sysctl.d/60-gwx.conf`, `nix/sysctl.nix` and the `[sysctl]` table of
//!   `images/appliances/gwx.toml` hold the same values, and the file is what `gwx sysctl`
//!   prints when a fresh gwx binary is in target/;
//! - each unit's ExecStart names subcommands and options the binary's clap definitions
//!   have (read as text: tests cannot rely on release builds);
//! - every unit goes through nix/modules/systemd.nix (what the NixOS modules use) with
//!   its [Service]/[Timer] section unchanged and every [Unit]/[Install] key mapped;
//! - `systemd-analyze verify` accepts the units.
//!
//! `UPDATE_UNITS=1 cargo test -p imgbuild --test units` rewrites the generated files
//! from the Nix settings instead of failing on them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::Value;

/// The first line of every generated file.
const GENERATED: &str = "# Generated from nix/units.nix by `UPDATE_UNITS=1 cargo test -p imgbuild --test units`: edit that file, not this one.";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn systemd_dir() -> PathBuf {
    repo().join("images/systemd")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_UNITS").is_some_and(|v| v == "1")
}

/// `nix-instantiate` with a throwaway HOME and the `dummy://` store: evaluating and
/// parsing need no store, so nothing is created under /nix, and no daemon is asked.
fn nix_instantiate(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().expect("a temporary HOME for nix");
    let out = Command::new("nix-instantiate")
        .args(["--store", "dummy://"])
        .args(args)
        .current_dir(repo())
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("NIX_PATH", "")
        .output();
    match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "nix-instantiate is not installed: install Debian's package nix-bin \
             (scripts/setup does: apt-get install nix-bin)"
        ),
        Err(e) => panic!("cannot run nix-instantiate: {e}"),
    }
}

/// Every `.nix` file of the repository (not under target/ or hidden directories).
fn nix_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "result" {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if name.ends_with(".nix") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo(), &mut out);
    out
}

#[test]
fn every_nix_file_parses() {
    let files = nix_files();
    for must in [
        "flake.nix",
        "nix/units.nix",
        "nix/render-units.nix",
        "nix/sysctl.nix",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(must)),
            "{must} is missing (found {files:?})"
        );
    }
    let mut failed = Vec::new();
    for f in &files {
        let out = nix_instantiate(&["--parse", f.to_str().unwrap()]);
        if !out.status.success() {
            failed.push(format!(
                "{}: {}",
                f.strip_prefix(repo()).unwrap_or(f).display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} .nix files do not parse:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
    eprintln!("{} .nix files parse", files.len());
}

/// What nix/render-units.nix evaluates to.
fn rendered() -> Value {
    let out = nix_instantiate(&["--eval", "--strict", "--json", "nix/render-units.nix"]);
    assert!(
        out.status.success(),
        "nix-instantiate --eval nix/render-units.nix failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix-instantiate --json prints JSON")
}

/// A unit: section -> key -> values (a key given on several lines has several values).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// A unit from the Nix settings: bools are yes/no, lists one value per element.
fn unit_from_json(name: &str, v: &Value) -> Unit {
    let mut unit = Unit::new();
    for (section, keys) in v
        .as_object()
        .unwrap_or_else(|| panic!("{name}: not an attrset"))
    {
        let mut out = BTreeMap::new();
        for (key, value) in keys.as_object().unwrap() {
            let scalar = |v: &Value| match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
                Value::Number(n) => n.to_string(),
                other => panic!("{name}: [{section}] {key}: unexpected {other}"),
            };
            let values = match value {
                Value::Array(items) => items.iter().map(scalar).collect(),
                v => vec![scalar(v)],
            };
            out.insert(key.clone(), values);
        }
        unit.insert(section.clone(), out);
    }
    unit
}

/// A unit file read as systemd reads it (no line continuations: the generated files
/// have none). Errors name the file and line.
fn parse_unit(path: &Path) -> Result<Unit, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut unit = Unit::new();
    let mut section: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if unit.contains_key(name) {
                return Err(format!("{}: section [{name}] twice", at()));
            }
            unit.insert(name.to_owned(), BTreeMap::new());
            section = Some(name.to_owned());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{}: not `Key=value`: {line:?}", at()));
        };
        let Some(s) = &section else {
            return Err(format!("{}: a setting before any section", at()));
        };
        unit.get_mut(s)
            .unwrap()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    Ok(unit)
}

/// The differences between what Nix says and what a file holds, one line each.
fn diff_unit(name: &str, want: &Unit, got: &Unit) -> Vec<String> {
    let mut out = Vec::new();
    for (section, keys) in want {
        let Some(have) = got.get(section) else {
            out.push(format!("{name}: section [{section}] missing"));
            continue;
        };
        for (key, values) in keys {
            match have.get(key) {
                None => out.push(format!(
                    "{name}: [{section}] {key} missing (nix: {values:?})"
                )),
                Some(v) if v != values => out.push(format!(
                    "{name}: [{section}] {key} differs: file {v:?}, nix {values:?}"
                )),
                Some(_) => {}
            }
        }
        for (key, values) in have {
            if !keys.contains_key(key) {
                out.push(format!(
                    "{name}: [{section}] {key} = {values:?} is in the file but not in nix/units.nix"
                ));
            }
        }
    }
    for section in got.keys() {
        if !want.contains_key(section) {
            out.push(format!(
                "{name}: section [{section}] is not in nix/units.nix"
            ));
        }
    }
    out
}

/// The unit file for `unit`: sections in systemd's usual order, the important keys first.
fn render_unit(unit: &Unit) -> String {
    let mut out = format!("{GENERATED}\n");
    let order = ["Unit", "Service", "Timer", "Install"];
    let mut sections: Vec<&String> = unit.keys().collect();
    sections.sort_by_key(|s| order.iter().position(|o| o == s).unwrap_or(order.len()));
    let first = ["Description", "Type", "ExecStart", "ExecReload"];
    for s in sections {
        let _ = write!(out, "\n[{s}]\n");
        let mut keys: Vec<(&String, &Vec<String>)> = unit[s].iter().collect();
        keys.sort_by_key(|(k, _)| first.iter().position(|f| f == k).unwrap_or(first.len()));
        for (k, values) in keys {
            for v in values {
                let _ = writeln!(out, "{k}={v}");
            }
        }
    }
    out
}

fn render_sysusers(users: &Value) -> String {
    let mut out = format!("{GENERATED}\n# The services' dedicated users (systemd-sysusers).\n");
    for (name, u) in users.as_object().unwrap() {
        let _ = writeln!(
            out,
            "u {name} - \"{}\" {} -",
            u["description"].as_str().unwrap(),
            u["home"].as_str().unwrap()
        );
    }
    out
}

fn render_modules(modules: &[Value]) -> String {
    let mut out = format!(
        "{GENERATED}\n# Loaded before systemd-sysctl: net.netfilter.* in sysctl.d/60-gwx.conf needs them.\n"
    );
    for m in modules {
        let _ = writeln!(out, "{}", m.as_str().unwrap());
    }
    out
}

/// Compares (or with UPDATE_UNITS=1 writes) a generated file that is not a unit.
fn check_text(path: &Path, want: &str, problems: &mut Vec<String>) {
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, want).unwrap();
        return;
    }
    let got = std::fs::read_to_string(path).unwrap_or_default();
    let lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let (w, g) = (lines(want), lines(&got));
    for l in &w {
        if !g.contains(l) {
            problems.push(format!("{}: missing line {l:?}", path.display()));
        }
    }
    for l in &g {
        if !w.contains(l) {
            problems.push(format!(
                "{}: line {l:?} is not from nix/units.nix",
                path.display()
            ));
        }
    }
}

#[test]
fn unit_files_match_the_nix_settings() {
    let nix = rendered();
    let units = nix["units"].as_object().expect("units");
    let dir = systemd_dir();
    let mut problems = Vec::new();
    for (name, settings) in units {
        let want = unit_from_json(name, settings);
        let path = dir.join(name);
        if updating() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, render_unit(&want)).unwrap();
        }
        match parse_unit(&path) {
            Ok(got) => problems.extend(diff_unit(name, &want, &got)),
            Err(e) => problems.push(e),
        }
    }
    // No unit file that Nix does not know of.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let is_unit = [".service", ".timer", ".socket", ".path"]
            .iter()
            .any(|s| name.ends_with(s));
        if is_unit && !units.contains_key(&name) {
            problems.push(format!(
                "{name}: in images/systemd but not in nix/units.nix"
            ));
        }
    }
    check_text(
        &dir.join("sysusers.d/perimeter.conf"),
        &render_sysusers(&nix["users"]),
        &mut problems,
    );
    check_text(
        &dir.join("modules-load.d/gwx.conf"),
        &render_modules(nix["modules"]["gwx"].as_array().unwrap()),
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "images/systemd differs from nix/units.nix (rewrite with UPDATE_UNITS=1 cargo test -p imgbuild --test units if nix/units.nix is right):\n{}",
        problems.join("\n")
    );
    eprintln!("{} units match nix/units.nix", units.len());
}

#[test]
fn nixos_modules_take_every_unit_as_it_is() {
    let out = nix_instantiate(&["--eval", "--strict", "--json", "nix/check-units.nix"]);
    assert!(
        out.status.success(),
        "nix/check-units.nix (the modules' view of nix/units.nix) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let units = v.as_object().expect("an attrset of units");
    let wrong: Vec<&String> = units
        .iter()
        .filter(|(_, ok)| **ok != Value::Bool(true))
        .map(|(n, _)| n)
        .collect();
    assert!(
        wrong.is_empty(),
        "nix/modules/systemd.nix changes these units: {wrong:?}"
    );
    assert_eq!(
        units.len(),
        rendered()["units"].as_object().unwrap().len(),
        "nix/check-units.nix did not see every unit"
    );
}

/// `key = value` lines of a sysctl.d file, in order; a key twice is an error.
fn parse_sysctl(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("60-gwx.conf: not `key = value`: {line:?}"));
        let k = k.trim().to_owned();
        assert!(
            !out.iter().any(|(o, _)| *o == k),
            "60-gwx.conf: {k} set twice"
        );
        out.push((k, v.trim().to_owned()));
    }
    out
}

fn diff_maps(
    a_name: &str,
    a: &BTreeMap<String, String>,
    b_name: &str,
    b: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("{k} = {v:?} in {a_name}, missing in {b_name}")),
            Some(w) if w != v => out.push(format!("{k}: {a_name} {v:?}, {b_name} {w:?}")),
            Some(_) => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push(format!("{k} = {v:?} in {b_name}, missing in {a_name}"));
        }
    }
    out
}

/// The newest mtime of the files under `dir`.
fn newest(dir: &Path) -> SystemTime {
    let mut t = SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = if p.is_dir() {
            newest(&p)
        } else {
            p.metadata().and_then(|m| m.modified()).unwrap()
        };
        t = t.max(m);
    }
    t
}

/// A gwx binary in target/ built after the last change to its sources, if any.
fn fresh_gwx() -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let sources = newest(&repo().join("services/gwx/src"))
        .max(newest(&repo().join("services/appliance/src")));
    let mut seen = Vec::new();
    for profile in ["debug", "release"] {
        let bin = target.join(profile).join("gwx");
        if let Ok(m) = bin.metadata().and_then(|m| m.modified()) {
            if m >= sources {
                return Ok(bin);
            }
            seen.push(format!("{} is older than the gwx sources", bin.display()));
        }
    }
    if seen.is_empty() {
        Err(format!("no gwx binary under {}", target.display()))
    } else {
        Err(seen.join("; "))
    }
}

#[test]
fn sysctl_file_matches_the_appliance_and_the_nix_module() {
    let path = systemd_dir().join("sysctl.d/60-gwx.conf");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: BTreeMap<String, String> = parse_sysctl(&text).into_iter().collect();

    let nix: BTreeMap<String, String> = rendered()["sysctl"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().expect("sysctl values are strings").to_owned(),
            )
        })
        .collect();

    let def_path = repo().join("images/appliances/gwx.toml");
    let def: toml::Table = std::fs::read_to_string(&def_path).unwrap().parse().unwrap();
    let table: BTreeMap<String, String> = def["sysctl"]
        .as_table()
        .expect("gwx.toml has a [sysctl] table")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().expect("sysctl values are strings").to_owned(),
            )
        })
        .collect();

    let mut problems = diff_maps("60-gwx.conf", &file, "nix/sysctl.nix", &nix);
    problems.extend(diff_maps("60-gwx.conf", &file, "gwx.toml [sysctl]", &table));
    assert!(
        problems.is_empty(),
        "the gateway's sysctls differ:\n{}",
        problems.join("\n")
    );

    // The file is gwx's own output for the appliance's grid, byte for byte.
    match fresh_gwx() {
        Ok(gwx) => {
            let out = Command::new(&gwx)
                .current_dir(repo())
                .args([
                    "--config",
                    "images/files/gwx/grid.toml",
                    "--gateway",
                    "gw1",
                    "sysctl",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} sysctl: {}",
                gwx.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let printed = String::from_utf8(out.stdout).unwrap();
            let values: BTreeMap<String, String> = parse_sysctl(&printed).into_iter().collect();
            let problems = diff_maps("60-gwx.conf", &file, "`gwx sysctl`", &values);
            assert!(
                problems.is_empty() && printed == text,
                "images/systemd/sysctl.d/60-gwx.conf is not what `gwx --config images/files/gwx/grid.toml --gateway gw1 sysctl` prints \
                 (rewrite it with `... sysctl --write images/systemd/sysctl.d/60-gwx.conf` and copy the values into the [sysctl] table of images/appliances/gwx.toml):\n{}",
                problems.join("\n")
            );
        }
        Err(why) => eprintln!("not compared with `gwx sysctl`: {why}"),
    }
}

/// `foo-bar` -> `FooBar`, as clap derives subcommand names from variants.
fn camel(word: &str) -> String {
    word.split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The text of a binary's command-line definitions: its main.rs, its cli module(s), and
/// the options every service shares.
fn cli_sources(bin: &str) -> String {
    let src = repo().join("services").join(bin).join("src");
    let mut files = vec![
        src.join("main.rs"),
        src.join("cli.rs"),
        repo().join("services/appliance/src/cli.rs"),
    ];
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
    }
    walk(&src.join("cli"), &mut files);
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn exec_start_uses_subcommands_and_options_the_binaries_have() {
    let nix = rendered();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, unit) in nix["units"].as_object().unwrap() {
        let Some(exec) = unit["Service"]["ExecStart"].as_str() else {
            continue;
        };
        let argv: Vec<&str> = exec.split_whitespace().collect();
        let Some(bin) = argv[0].strip_prefix("/usr/local/bin/") else {
            problems.push(format!(
                "{name}: ExecStart {:?} is not under /usr/local/bin",
                argv[0]
            ));
            continue;
        };
        let src = cli_sources(bin);
        if !src.contains("Subcommand") {
            problems.push(format!("{name}: no clap definitions found for {bin}"));
            continue;
        }
        for arg in &argv[1..] {
            if let Some(opt) = arg.strip_prefix("--") {
                let field = opt.split('=').next().unwrap().replace('-', "_");
                if !src.contains(&format!("pub {field}:")) {
                    problems.push(format!(
                        "{name}: {bin} has no option --{}",
                        field.replace('_', "-")
                    ));
                }
            } else if arg.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && arg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                // A subcommand: a variant of an enum deriving Subcommand.
                let variant = camel(arg);
                let found = src.lines().map(str::trim).any(|l| {
                    l.strip_prefix(&variant).is_some_and(|rest| {
                        rest.is_empty() || rest.starts_with([',', '(', ' ', '{'])
                    })
                });
                if !found {
                    problems.push(format!(
                        "{name}: {bin} has no subcommand {arg:?} (no variant {variant})"
                    ));
                }
            }
            // Anything else is a positional value (a path).
        }
        checked += 1;
    }
    assert!(
        problems.is_empty(),
        "ExecStart lines the binaries would refuse:\n{}",
        problems.join("\n")
    );
    eprintln!("{checked} ExecStart lines checked against the clap definitions");
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have,
        "systemd-analyze is missing: install Debian's package systemd (scripts/setup does)"
    );
    if updating() {
        eprintln!("skipped while UPDATE_UNITS=1 rewrites the units: run the test again");
        return;
    }
    // The binaries are not installed here: verify checks that ExecStart is executable,
    // so the units are copied with /usr/local/bin pointing at stubs.
    let tmp = tempfile::tempdir().unwrap();
    let stubs = tmp.path().join("bin");
    std::fs::create_dir(&stubs).unwrap();
    let mut units = Vec::new();
    for e in std::fs::read_dir(systemd_dir()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for bin in ["gwx", "avsx", "tlsaudit", "keyrotate", "dbm"] {
            let stub = stubs.join(bin);
            if !stub.exists() {
                std::os::unix::fs::symlink("/bin/true", &stub).unwrap();
            }
        }
        let text = text.replace("/usr/local/bin/", &format!("{}/", stubs.display()));
        let copy = tmp.path().join(&name);
        std::fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    units.sort();
    assert!(!units.is_empty(), "no units in images/systemd");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Complaints about our units name them; other units of the host are not ours.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            units
                .iter()
                .any(|u| l.contains(&*u.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify (exit {:?}):\n{}",
        out.status.code(),
        stderr
    );
    eprintln!("systemd-analyze verify: {} units accepted", units.len());
}
