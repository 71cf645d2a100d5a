//! The archives an image is made of, written from a [`Tree`] so that the same tree gives
//! the same bytes: entries in the tree's sorted order, owner root, every time set to the
//! build's epoch (`SOURCE_DATE_EPOCH`), inode numbers counted from 1, gzip without a
//! file name or time.
//!
//! * the initramfs: a newc cpio (the format the kernel unpacks), by the `cpio` crate;
//! * an OCI layer: a ustar/GNU tar, by the `tar` crate.

use std::io::Write;

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};

use crate::tree::{Node, Tree};

/// The initramfs: every entry of `tree`, uncompressed (see [`gzip`]).
pub fn cpio(tree: &Tree, epoch: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (ino, (path, node)) in tree.entries().enumerate() {
        let (mode, data) = match node {
            Node::Dir { mode } => (0o040000 | mode, Vec::new()),
            Node::File { content, mode } => (0o100000 | mode, content.read()?),
            Node::Symlink { target } => (0o120777, target.as_bytes().to_vec()),
            Node::CharDev { mode, .. } => (0o020000 | mode, Vec::new()),
        };
        let mut header = cpio::NewcBuilder::new(path)
            .ino(ino as u32 + 1)
            .mode(mode)
            .uid(0)
            .gid(0)
            .nlink(if matches!(node, Node::Dir { .. }) {
                2
            } else {
                1
            })
            .mtime(epoch);
        if let Node::CharDev { major, minor, .. } = node {
            header = header.rdev_major(*major).rdev_minor(*minor);
        }
        let size = u32::try_from(data.len()).with_context(|| format!("/{path} is over 4 GiB"))?;
        let mut w = header.write(&mut out, size);
        w.write_all(&data)
            .with_context(|| format!("write /{path} into the cpio"))?;
        w.finish()
            .with_context(|| format!("finish /{path} in the cpio"))?;
    }
    cpio::newc::trailer(&mut out).context("write the cpio trailer")?;
    Ok(out)
}

/// An OCI layer: every entry of `tree` but character devices (a container runtime
/// provides `/dev`), uncompressed (see [`gzip`]).
pub fn tar(tree: &Tree, epoch: u32) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, node) in tree.entries() {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(u64::from(epoch));
        let done = match node {
            Node::Dir { mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, format!("{path}/"), std::io::empty())
            }
            Node::File { content, mode } => {
                let data = content.read()?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_slice())
            }
            Node::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target)
            }
            Node::CharDev { .. } => continue,
        };
        done.with_context(|| format!("write /{path} into the tar"))?;
    }
    b.into_inner().context("finish the tar")
}

/// gzip at the best ratio, with no file name and time 0 in the header, so the bytes
/// depend only on the input.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(data).context("gzip")?;
    gz.finish().context("gzip")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Content;

    fn sample() -> Tree {
        let mut t = Tree::new();
        t.text("/etc/hostname", "gwx\n", 0o644).unwrap();
        t.symlink("/bin/sh", "busybox").unwrap();
        t.file("/bin/busybox", Content::Bytes(vec![1, 2, 3]), 0o755)
            .unwrap();
        t.char_dev("/dev/console", 5, 1, 0o600).unwrap();
        t
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        let (a, b) = (sample(), sample());
        assert_eq!(cpio(&a, 1).unwrap(), cpio(&b, 1).unwrap());
        assert_eq!(tar(&a, 1).unwrap(), tar(&b, 1).unwrap());
        assert_eq!(
            gzip(&tar(&a, 1).unwrap()).unwrap(),
            gzip(&tar(&b, 1).unwrap()).unwrap()
        );
        assert_ne!(
            cpio(&a, 1).unwrap(),
            cpio(&a, 2).unwrap(),
            "the epoch is in it"
        );
    }

    #[test]
    fn the_cpio_reads_back_with_modes_links_and_devices() {
        let data = cpio(&sample(), 7).unwrap();
        let mut r = std::io::Cursor::new(data);
        let mut seen = Vec::new();
        loop {
            let entry = cpio::NewcReader::new(&mut r).unwrap();
            if entry.entry().is_trailer() {
                break;
            }
            let e = entry.entry();
            seen.push((
                e.name().to_owned(),
                e.mode(),
                e.mtime(),
                e.rdev_major(),
                e.file_size(),
            ));
            entry.finish().unwrap();
        }
        assert_eq!(
            seen,
            [
                ("bin".to_owned(), 0o040755, 7, 0, 0),
                ("bin/busybox".to_owned(), 0o100755, 7, 0, 3),
                ("bin/sh".to_owned(), 0o120777, 7, 0, 7),
                ("dev".to_owned(), 0o040755, 7, 0, 0),
                ("dev/console".to_owned(), 0o020600, 7, 5, 0),
                ("etc".to_owned(), 0o040755, 7, 0, 0),
                ("etc/hostname".to_owned(), 0o100644, 7, 0, 4),
            ]
        );
    }

    #[test]
    fn the_tar_reads_back_without_devices() {
        let data = tar(&sample(), 7).unwrap();
        let mut a = tar::Archive::new(data.as_slice());
        let names: Vec<(String, u32, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("bin/".to_owned(), 0o755, 7),
                ("bin/busybox".to_owned(), 0o755, 7),
                ("bin/sh".to_owned(), 0o777, 7),
                ("dev/".to_owned(), 0o755, 7),
                ("etc/".to_owned(), 0o755, 7),
                ("etc/hostname".to_owned(), 0o644, 7),
            ]
        );
    }
}
