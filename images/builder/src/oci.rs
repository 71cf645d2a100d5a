//! The OCI image of an appliance: one gzip layer of the OCI-flavoured tree, its config
//! and manifest (oci-spec's types), written as an OCI image layout directory, and the
//! same layout packed in one tar that also carries Docker's `manifest.json`, so that
//! `docker load` (which predates OCI layouts in Docker 20.10) loads it too.
//!
//! Reproducible: the layer comes from [`crate::archive`], the JSON from structs (no
//! maps with more than one key: a `HashMap`'s order would change between runs), and
//! the created time is the build's epoch.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};

use crate::archive;
use crate::definition::Definition;
use crate::tree::{Content, Tree};

/// What was written.
#[derive(Debug, Clone)]
pub struct Oci {
    /// The OCI image layout directory.
    pub layout: PathBuf,
    /// The layout and Docker's `manifest.json` in one tar.
    pub archive: PathBuf,
    /// The tar's SHA-256 in hex (for SHA256SUMS).
    pub archive_sha256: String,
    /// `sha256:...` of the manifest: the image's digest.
    pub manifest_digest: String,
    /// `sha256:...` of the config: Docker's image ID.
    pub config_digest: String,
    /// The compressed layer's size.
    pub layer_bytes: u64,
    /// `<repository>:<tag>` in the index and in Docker's manifest.
    pub reference: String,
}

/// The repository every appliance image is named under.
pub const REPOSITORY: &str = "perimeter";

/// Writes `<out>/oci/` and `<out>/<name>.oci.tar` for `tree`.
pub fn write(tree: &Tree, def: &Definition, epoch: u32, out: &Path) -> Result<Oci> {
    let layer_tar = archive::tar(tree, epoch)?;
    let diff_id = sha256(&layer_tar);
    let layer = archive::gzip(&layer_tar)?;
    let tag = env!("CARGO_PKG_VERSION");
    let reference = format!("{REPOSITORY}/{}:{tag}", def.name);

    let created = chrono::DateTime::from_timestamp(i64::from(epoch), 0)
        .context("the epoch is no time")?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let config = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(
            ConfigBuilder::default()
                .entrypoint(vec!["/sbin/init".to_owned()])
                .env(vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_owned()])
                // busybox init powers off on SIGUSR2 (after the shutdown actions);
                // SIGTERM would mean reboot.
                .stop_signal("SIGUSR2".to_owned())
                .build()?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id])
                .build()?,
        )
        .build()?;
    let config_json = serde_json::to_vec(&config)?;

    let mut blobs = Tree::new();
    let config_desc = blob(&mut blobs, MediaType::ImageConfig, config_json)?;
    let layer_desc = blob(&mut blobs, MediaType::ImageLayerGzip, layer)?;
    let layer_bytes = layer_desc.size();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc.clone())
        .layers(vec![layer_desc.clone()])
        .build()?;
    let mut manifest_desc = blob(
        &mut blobs,
        MediaType::ImageManifest,
        serde_json::to_vec(&manifest)?,
    )?;
    manifest_desc.set_annotations(Some(
        [(
            "org.opencontainers.image.ref.name".to_owned(),
            tag.to_owned(),
        )]
        .into(),
    ));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_desc.clone()])
        .build()?;
    let layout_file = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()?;

    let mut files = blobs;
    files.text("/oci-layout", &serde_json::to_string(&layout_file)?, 0o644)?;
    files.text("/index.json", &serde_json::to_string(&index)?, 0o644)?;
    let layout = out.join("oci");
    write_tree(&files, &layout)?;

    // Docker's own archive format beside the layout, pointing at the same blobs.
    let docker = serde_json::json!([{
        "Config": blob_path(config_desc.digest()),
        "RepoTags": [reference],
        "Layers": [blob_path(layer_desc.digest())],
    }]);
    files.text("/manifest.json", &docker.to_string(), 0o644)?;
    let archive = out.join(format!("{}.oci.tar", def.name));
    let tar = archive::tar(&files, epoch)?;
    std::fs::write(&archive, &tar).with_context(|| format!("write {}", archive.display()))?;

    Ok(Oci {
        layout,
        archive,
        archive_sha256: sha256_hex(&tar),
        manifest_digest: manifest_desc.digest().to_string(),
        config_digest: config_desc.digest().to_string(),
        layer_bytes,
        reference,
    })
}

/// Adds `data` as a blob and returns its descriptor.
fn blob(blobs: &mut Tree, media_type: MediaType, data: Vec<u8>) -> Result<Descriptor> {
    let digest: Digest = sha256(&data).parse().context("a sha256 digest")?;
    let desc = Descriptor::new(media_type, data.len() as u64, digest.clone());
    blobs.file(&blob_path(&digest), Content::Bytes(data), 0o644)?;
    Ok(desc)
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.digest())
}

/// `sha256:<hex>`: an OCI digest.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// The SHA-256 of `data` in hex, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(64);
    for b in Sha256::digest(data) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Writes the regular files and directories of `tree` under `dir` (replaced).
fn write_tree(tree: &Tree, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (path, node) in tree.entries() {
        let at = dir.join(path);
        match node {
            crate::tree::Node::Dir { .. } => std::fs::create_dir_all(&at),
            crate::tree::Node::File { content, .. } => std::fs::write(&at, content.read()?),
            other => anyhow::bail!("/{path}: {other:?} has no place in an OCI layout"),
        }
        .with_context(|| format!("write {}", at.display()))?;
    }
    Ok(())
}
