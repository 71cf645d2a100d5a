//! The files a rotation writes into its output directory, each replaced atomically
//! (temporary file, fsync, rename), so a kill never leaves half a key behind.

use std::path::{Path, PathBuf};

use anyhow::Context;
use appliance::state::{MODE_PRIVATE, MODE_PUBLIC, write_atomic};
use sequoia_openpgp::armor::{self, Kind};
use sequoia_openpgp::packet::{Packet, Signature};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::{Marshal, SerializeInto};
use sequoia_openpgp::{Cert, Fingerprint};

/// The new secret key (mode 0600); written first of the new key's files, its presence
/// means the key exists and a rerun adopts it instead of generating another.
pub const NEW_SECRET: &str = "new-secret.asc";
pub const NEW_PUBLIC_ARMORED: &str = "new-public.asc";
pub const NEW_PUBLIC_BINARY: &str = "new-public.pgp";
/// The new key's emergency revocation certificate (mode 0600: whoever has it can
/// revoke the key).
pub const NEW_REVOCATION: &str = "new-revocation.asc";

/// `old-<FPR>-revoked.asc`: an old public key carrying its revocation.
pub fn revoked_name(fingerprint: &Fingerprint) -> String {
    format!("old-{}-revoked.asc", fingerprint.to_hex())
}

pub struct Output<'a> {
    pub dir: &'a Path,
}

impl Output<'_> {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
        let p = self.path(name);
        write_atomic(&p, bytes, mode).with_context(|| format!("writing {}", p.display()))
    }

    /// The output directory, created owner-only: it holds a secret key.
    pub fn create(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.dir)
            .with_context(|| format!("creating the output directory {}", self.dir.display()))
    }

    /// The new secret key, if a previous run wrote it.
    pub fn read_secret(&self) -> anyhow::Result<Option<Cert>> {
        let p = self.path(NEW_SECRET);
        if !p.exists() {
            return Ok(None);
        }
        let cert = Cert::from_file(&p).with_context(|| format!("reading {}", p.display()))?;
        anyhow::ensure!(
            cert.is_tsk(),
            "{} holds no secret key material",
            p.display()
        );
        Ok(Some(cert))
    }

    pub fn write_secret(&self, tsk: &Cert) -> anyhow::Result<()> {
        let bytes = tsk
            .as_tsk()
            .armored()
            .to_vec()
            .context("encoding the new secret key")?;
        self.write(NEW_SECRET, &bytes, MODE_PRIVATE)
    }

    /// The new public key, armored and binary (no secret material: `Cert`'s own
    /// serialization leaves it out).
    pub fn write_public(&self, cert: &Cert) -> anyhow::Result<()> {
        let armored = cert
            .armored()
            .to_vec()
            .context("encoding the new public key")?;
        let binary = cert.to_vec().context("encoding the new public key")?;
        self.write(NEW_PUBLIC_ARMORED, &armored, MODE_PUBLIC)?;
        self.write(NEW_PUBLIC_BINARY, &binary, MODE_PUBLIC)
    }

    /// The emergency revocation certificate, in the form GnuPG writes its own: an
    /// armored public key block holding only the revocation signature.
    pub fn write_revocation(
        &self,
        fingerprint: &Fingerprint,
        rev: &Signature,
    ) -> anyhow::Result<()> {
        let mut bytes = Vec::new();
        let comment = format!("Revocation certificate for {}", fingerprint.to_hex());
        let mut w =
            armor::Writer::with_headers(&mut bytes, Kind::PublicKey, [("Comment", comment)])
                .context("encoding the revocation certificate")?;
        Packet::from(rev.clone())
            .serialize(&mut w)
            .context("encoding the revocation certificate")?;
        w.finalize()
            .context("encoding the revocation certificate")?;
        self.write(NEW_REVOCATION, &bytes, MODE_PRIVATE)
    }

    /// The revoked old key, if a previous run wrote it.
    pub fn read_revoked(&self, fingerprint: &Fingerprint) -> anyhow::Result<Option<Cert>> {
        let p = self.path(&revoked_name(fingerprint));
        if !p.exists() {
            return Ok(None);
        }
        Cert::from_file(&p)
            .map(Some)
            .with_context(|| format!("reading {}", p.display()))
    }

    pub fn write_revoked(&self, cert: &Cert) -> anyhow::Result<()> {
        let bytes = cert
            .armored()
            .to_vec()
            .context("encoding a revoked old key")?;
        self.write(&revoked_name(&cert.fingerprint()), &bytes, MODE_PUBLIC)
    }
}
