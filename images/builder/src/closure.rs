//! What a program or a kernel module needs besides itself, asked of the tools that
//! know: `ldd` (the dynamic loader's own answer) for shared libraries, kmod's
//! `modprobe --show-depends` for module dependencies in load order.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The shared libraries `program` loads, the dynamic loader included, as the paths
/// the loader uses (copied to the same paths in the image). A static program has none.
pub fn libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .context("run ldd (package libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // ldd exits 1 for "not a dynamic executable": a static binary needs nothing.
        let err = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || err.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", program.display(), err.trim());
    }
    parse_ldd(&text).with_context(|| format!("libraries of {}", program.display()))
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            bail!("a library is missing: {line}");
        }
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    libs.sort();
    libs.dedup();
    Ok(libs)
}

/// The module files to load for `modules` on kernel `release`, dependencies first,
/// each once; built-in modules need nothing.
pub fn modules(release: &str, modules: &[String]) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for m in modules {
        let out = Command::new("modprobe")
            .args(["-S", release, "--show-depends", m])
            .output()
            .context("run modprobe (package kmod)")?;
        if !out.status.success() {
            bail!(
                "kernel module {m} for {release}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for file in parse_show_depends(&String::from_utf8_lossy(&out.stdout)) {
            if !files.contains(&file) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

fn parse_show_depends(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("insmod "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_loader_and_the_libraries() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn show_depends_keeps_the_load_order() {
        let text = "builtin crc32c\ninsmod /lib/modules/6.1/kernel/a.ko \n\
                    insmod /lib/modules/6.1/kernel/b.ko opt=1\n";
        assert_eq!(
            parse_show_depends(text),
            [
                PathBuf::from("/lib/modules/6.1/kernel/a.ko"),
                PathBuf::from("/lib/modules/6.1/kernel/b.ko")
            ]
        );
    }

    #[test]
    fn a_real_program_needs_the_loader() {
        let libs = libraries(Path::new("/bin/ls")).unwrap();
        assert!(
            libs.iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "{libs:?}"
        );
    }
}
