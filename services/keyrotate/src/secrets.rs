//! Passphrases and passwords: read from a file (its first line) or an environment
//! variable, held as Sequoia's [`Password`] (encrypted in memory, zeroed on drop) and
//! never printed: `Password`'s `Debug` hides the value.

use anyhow::{Context, bail};
use sequoia_openpgp::crypto::Password;

use crate::config::SecretSource;

/// The secret, or `None` when the source names neither a file nor a variable.
pub fn read(source: &SecretSource, what: &str) -> anyhow::Result<Option<Password>> {
    if let Some(path) = &source.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the {what} from {}", path.display()))?;
        let line = text.lines().next().unwrap_or("");
        if line.is_empty() {
            bail!("the {what} file {} is empty", path.display());
        }
        return Ok(Some(line.into()));
    }
    if let Some(name) = &source.env {
        let value =
            std::env::var(name).with_context(|| format!("reading the {what} from ${name}"))?;
        if value.is_empty() {
            bail!("the {what} variable ${name} is empty");
        }
        return Ok(Some(value.into()));
    }
    Ok(None)
}

/// The secret as text, for protocols that want it so (SMTP AUTH).
pub fn reveal(password: &Password) -> String {
    password.map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_first_line_env_and_none() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p");
        std::fs::write(&f, "s3cret\nignored\n").unwrap();
        let from_file = SecretSource {
            file: Some(f.clone()),
            env: None,
        };
        assert_eq!(reveal(&read(&from_file, "x").unwrap().unwrap()), "s3cret");
        std::fs::write(&f, "\n").unwrap();
        let e = read(&from_file, "passphrase").unwrap_err().to_string();
        assert!(e.contains("passphrase file") && e.contains("empty"), "{e}");
        let missing = SecretSource {
            file: Some(dir.path().join("nope")),
            env: None,
        };
        let e = format!("{:#}", read(&missing, "passphrase").unwrap_err());
        assert!(e.contains("nope") && e.contains("No such file"), "{e}");
        let env = SecretSource {
            file: None,
            env: Some("KEYROTATE_TEST_SURELY_UNSET".into()),
        };
        let e = format!("{:#}", read(&env, "password").unwrap_err());
        assert!(e.contains("$KEYROTATE_TEST_SURELY_UNSET"), "{e}");
        assert!(read(&SecretSource::default(), "x").unwrap().is_none());
    }
}
