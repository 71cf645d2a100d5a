//! The image's file tree, kept in memory as a sorted map before anything is written, so
//! that the initramfs and the OCI layer are written from one list in one order, with
//! one owner (root) and one time ([`crate::archive`]): nothing of the build machine's
//! directory order, umask, owners or clock gets in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// What is at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        content: Content,
        mode: u32,
    },
    Symlink {
        target: String,
    },
    /// A character device (`/dev/console` in the initramfs: the kernel opens it for
    /// init's output before anything can mount devtmpfs).
    CharDev {
        major: u32,
        minor: u32,
        mode: u32,
    },
}

/// Where a file's bytes come from: read when the archive is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

impl Content {
    pub fn read(&self) -> Result<Vec<u8>> {
        match self {
            Content::Bytes(b) => Ok(b.clone()),
            Content::Host(p) => std::fs::read(p).with_context(|| format!("read {}", p.display())),
        }
    }
}

/// Paths are kept without the leading `/` (`etc/inittab`), as archives store them.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Adds a directory and its missing parents (0755).
    pub fn dir(&mut self, path: &str) -> Result<()> {
        self.insert(path, Node::Dir { mode: 0o755 })
    }

    pub fn file(&mut self, path: &str, content: Content, mode: u32) -> Result<()> {
        self.insert(path, Node::File { content, mode })
    }

    pub fn text(&mut self, path: &str, text: &str, mode: u32) -> Result<()> {
        self.file(path, Content::Bytes(text.as_bytes().to_vec()), mode)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_owned(),
            },
        )
    }

    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32, mode: u32) -> Result<()> {
        self.insert(path, Node::CharDev { major, minor, mode })
    }

    /// Whether something is at `path` already.
    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(key(path).as_str())
    }

    /// The entries in archive order: sorted by path, so parents come before children.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The same entry twice is fine (two programs needing one library); two different
    /// ones at one path are a definition error.
    fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let k = key(path);
        if k.is_empty() || k.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            bail!("{path:?} is no path for the image");
        }
        if let Some((parent, _)) = k.rsplit_once('/') {
            match self.nodes.get(parent) {
                Some(Node::Dir { .. }) => {}
                Some(other) => bail!("{path}: its parent /{parent} is not a directory ({other:?})"),
                None => self.dir(parent)?,
            }
        }
        match self.nodes.get(&k) {
            None => {
                self.nodes.insert(k, node);
                Ok(())
            }
            Some(existing) if *existing == node => Ok(()),
            Some(Node::Dir { .. }) if matches!(node, Node::Dir { .. }) => Ok(()),
            Some(existing) => bail!("/{k} is added twice, differently: {existing:?} and {node:?}"),
        }
    }
}

fn key(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

/// `path` as a key for [`Tree`]: an absolute path in the image.
pub fn image_path(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    if !s.starts_with('/') {
        bail!("{s} is not an absolute path");
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_twice_the_same_is_once() {
        let mut t = Tree::new();
        t.text("/etc/init.d/rcS", "x", 0o755).unwrap();
        t.text("/etc/init.d/rcS", "x", 0o755).unwrap();
        t.symlink("/bin/sh", "busybox").unwrap();
        let paths: Vec<&str> = t.entries().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            ["bin", "bin/sh", "etc", "etc/init.d", "etc/init.d/rcS"]
        );
    }

    #[test]
    fn conflicts_and_bad_paths_are_refused() {
        let mut t = Tree::new();
        t.text("/etc/x", "a", 0o644).unwrap();
        assert!(t.text("/etc/x", "b", 0o644).is_err());
        assert!(t.text("/etc/x/y", "b", 0o644).is_err());
        assert!(t.text("/etc/../y", "b", 0o644).is_err());
        assert!(t.text("/", "b", 0o644).is_err());
    }
}
