//! OpenLDAP `slapd`, the directory the mail perimeter looks recipients up in.
//!
//! Configured by a `slapd.conf` in the private directory (simpler to generate than
//! `cn=config`, and slapd 2.5 still reads it) with one `mdb` database under
//! [`Slapd::BASE_DN`], a root DN with a plain password, and the standard schemas plus a
//! small extension: the attribute `proxyAddresses` (Active Directory's OID and name, with
//! an equality rule so `proxyAddresses=smtp:%s` filters match; Debian's `msuser.schema`
//! has none) and an auxiliary class `perimeterRecipient` that allows it and `mail`, so
//! test entries look like what the perimeter meets in real directories. The base entry
//! is loaded with `slapadd` before the start, so a test can add people straight away.
//!
//! `-h ldap://IP:PORT/` binds only the test address; `-d 0` keeps slapd in the foreground
//! (any `-d` does) without debug noise. Readiness is an `ldapsearch` of the root DSE that
//! must list the suffix, which proves the database was loaded, not just the port bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{CLIENT_TIMEOUT, Host, Running, Server, Setup, checked, impl_server, run};
use crate::error::Result;
use crate::require;

/// A running slapd with one database, [`Slapd::BASE_DN`], holding only its base entry.
#[derive(Debug)]
pub struct Slapd {
    run: Running,
    ldapadd: PathBuf,
    ldapsearch: PathBuf,
}
impl_server!(Slapd);

const SCHEMA: &str = "\
attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses'
  DESC 'Active Directory: addresses a mailbox receives mail for, e.g. smtp:a@b.test'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'perimeterRecipient'
  DESC 'test bed: an entry that receives mail' SUP top AUXILIARY
  MAY ( mail $ proxyAddresses ) )
";

impl Slapd {
    pub const BASE_DN: &'static str = "dc=perimeter,dc=test";
    pub const ADMIN_DN: &'static str = "cn=admin,dc=perimeter,dc=test";
    pub const ADMIN_PASSWORD: &'static str = "testbed-secret";

    pub fn start(host: Host<'_>) -> Result<Slapd> {
        require::root()?;
        let slapd = require::tool("slapd", "slapd")?;
        let slapadd = require::tool("slapadd", "slapd")?;
        let ldapadd = require::tool("ldapadd", "ldap-utils")?;
        let ldapsearch = require::tool("ldapsearch", "ldap-utils")?;

        let setup = Setup::new("slapd", host)?;
        let db = setup.mkdir("db")?;
        let schema = setup.write("perimeter.schema", SCHEMA)?;
        let conf = setup.write(
            "slapd.conf",
            format!(
                "\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include {schema}
pidfile {pid}
argsfile {args}
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
# Address space mdb maps up front; a test directory needs little.
maxsize 16777216
suffix \"{base}\"
rootdn \"{admin}\"
rootpw {password}
directory {db}
index objectClass eq
index mail,proxyAddresses eq
",
                schema = schema.display(),
                pid = setup.path("slapd.pid").display(),
                args = setup.path("slapd.args").display(),
                base = Self::BASE_DN,
                admin = Self::ADMIN_DN,
                password = Self::ADMIN_PASSWORD,
                db = db.display(),
            ),
        )?;
        let base = setup.write(
            "base.ldif",
            format!(
                "dn: {}\nobjectClass: dcObject\nobjectClass: organization\n\
                 dc: perimeter\no: perimeter\n",
                Self::BASE_DN
            ),
        )?;
        setup.prepare(
            "load the base entry",
            Command::new(slapadd)
                .arg("-f")
                .arg(&conf)
                .arg("-l")
                .arg(&base),
        )?;

        let url = url(setup.addr());
        let args = [
            "-f".into(),
            conf.into_os_string(),
            "-h".into(),
            format!("{url}/").into(),
            "-d".into(),
            "0".into(),
        ];
        let run = setup.launch(&slapd, &args, Duration::from_secs(30), |s| {
            let mut probe = s.command(&ldapsearch);
            probe
                .args(["-x", "-LLL", "-o", "nettimeout=2", "-H", &url])
                .args(["-s", "base", "-b", "", "namingContexts"]);
            let out = run(&mut probe, b"", Duration::from_secs(5)).map_err(|e| e.to_string())?;
            if out.stdout.contains(Self::BASE_DN) {
                Ok(())
            } else {
                Err(format!(
                    "root DSE lacks {}: {}{}",
                    Self::BASE_DN,
                    out.stdout,
                    out.stderr
                ))
            }
        })?;
        Ok(Slapd {
            run,
            ldapadd,
            ldapsearch,
        })
    }

    /// `ldap://IP:PORT`
    pub fn url(&self) -> String {
        url(self.addr())
    }

    pub fn base_dn(&self) -> &'static str {
        Self::BASE_DN
    }

    pub fn admin_dn(&self) -> &'static str {
        Self::ADMIN_DN
    }

    pub fn admin_password(&self) -> &'static str {
        Self::ADMIN_PASSWORD
    }

    /// Adds the entries in `ldif` as the admin (with `ldapadd`, in the server's namespace).
    pub fn add(&self, ldif: &str) -> Result<()> {
        let mut cmd = self.client(&self.ldapadd);
        checked(&mut cmd, ldif.as_bytes(), CLIENT_TIMEOUT).map(drop)
    }

    /// Searches the whole database as the admin and returns the LDIF (`ldapsearch -LLL`,
    /// so no comments), e.g. `search("(mail=a@perimeter.test)", &["cn"])`.
    pub fn search(&self, filter: &str, attrs: &[&str]) -> Result<String> {
        let mut cmd = self.client(&self.ldapsearch);
        cmd.args(["-LLL", "-b", Self::BASE_DN, filter]).args(attrs);
        checked(&mut cmd, b"", CLIENT_TIMEOUT)
    }

    /// An `ldap-utils` client bound as the admin to this server.
    fn client(&self, program: &Path) -> Command {
        let mut cmd = self.command(program);
        cmd.args([
            "-x",
            "-H",
            &self.url(),
            "-D",
            Self::ADMIN_DN,
            "-w",
            Self::ADMIN_PASSWORD,
        ]);
        cmd
    }
}

fn url(addr: SocketAddr) -> String {
    format!("ldap://{addr}")
}
