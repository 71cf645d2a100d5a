//! `dbm plan`: connect to the three servers, check every precondition of the migration
//! and list the steps the run will take. Reads only; changes nothing.
//!
//! Each precondition is a [`Check`] that passed or failed (with what to do about it);
//! checks on a server's host (its tools, free disk) run there, over ssh when the plan
//! says so. All checks run, so one `dbm plan` lists every problem at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::config::{Config, ReplicationMode, Role, SeedMethod, Server};
use crate::db::{self, Db, Flavour, ServerInfo};
use crate::host::Host;
use crate::journal::StepId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fail => "FAIL",
        }
    }
}

/// One precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `db1 login`, `server ids`.
    pub what: String,
    pub status: Status,
    /// What was found; for a failure, what is wrong and what to do.
    pub message: String,
}

/// One step of the run, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    pub name: &'static str,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanReport {
    pub checks: Vec<Check>,
    pub steps: Vec<PlannedStep>,
    /// The replication mode the run uses (configured, or chosen by what the servers
    /// support); `None` when the servers could not be asked.
    pub mode: Option<ReplicationMode>,
    /// Whether db1 needs the upgrade command (another release series than db0).
    pub needs_upgrade: Option<bool>,
}

impl PlanReport {
    /// Whether every precondition holds.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }
}

impl fmt::Display for PlanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "checks:")?;
        for c in &self.checks {
            writeln!(f, "  {:<4} {}: {}", c.status.label(), c.what, c.message)?;
        }
        writeln!(f, "steps:")?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {:>2}. {}: {}", i + 1, s.name, s.what)?;
        }
        let failed = self.failures().count();
        if failed == 0 {
            writeln!(f, "all preconditions hold")
        } else {
            writeln!(f, "{failed} precondition(s) failed:")?;
            for c in self.failures() {
                writeln!(f, "  {}", c.message)?;
            }
            Ok(())
        }
    }
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, what: impl Into<String>, status: Status, message: impl Into<String>) {
        self.0.push(Check {
            what: what.into(),
            status,
            message: message.into(),
        });
    }

    fn ok(&mut self, what: impl Into<String>, message: impl Into<String>) {
        self.push(what, Status::Ok, message);
    }

    fn fail(&mut self, what: impl Into<String>, message: impl Into<String>) {
        self.push(what, Status::Fail, message);
    }

    fn check(&mut self, what: &str, ok: bool, good: String, bad: String) {
        if ok {
            self.ok(what, good)
        } else {
            self.fail(what, bad)
        }
    }
}

/// What the servers said, for the checks that need more than one.
struct Found {
    info: BTreeMap<Role, ServerInfo>,
}

impl Found {
    fn get(&self, role: Role) -> Option<&ServerInfo> {
        self.info.get(&role)
    }
}

/// Connects to all three servers, checks every precondition and lists the steps.
pub async fn check(config: &Config) -> PlanReport {
    let mut checks = Checks::default();
    let (c0, c1, c2) = tokio::join!(
        connect_and_read(Role::Db0, &config.db0),
        connect_and_read(Role::Db1, &config.db1),
        connect_and_read(Role::Db2, &config.db2),
    );
    let mut conns = BTreeMap::new();
    let mut info = BTreeMap::new();
    for (role, result) in [(Role::Db0, c0), (Role::Db1, c1), (Role::Db2, c2)] {
        let what = format!("{role} login");
        match result {
            Ok((conn, i)) => {
                checks.ok(
                    what,
                    format!(
                        "{}: {} {} as '{}', server_id {}",
                        conn.endpoint,
                        i.flavour,
                        i.version_string,
                        config.server(role).user,
                        i.server_id
                    ),
                );
                conns.insert(role, conn);
                info.insert(role, i);
            }
            Err(e) => checks.fail(what, e.to_string()),
        }
    }
    let found = Found { info };

    binary_logs(&mut checks, &found);
    server_ids(&mut checks, &found);
    log_slave_updates(&mut checks, &found);
    versions(&mut checks, config, &found);
    datadirs(&mut checks, config, &found);
    let mode = replication_mode(&mut checks, config, &found);
    let method = seed_method(&mut checks, config, &found);
    tools(&mut checks, config, method).await;
    free_disk(&mut checks, config, conns.get_mut(&Role::Db0)).await;
    replication_user(&mut checks, config, &mut conns).await;
    db2_follows_db0(&mut checks, config, conns.get_mut(&Role::Db2)).await;

    for (_, conn) in conns {
        conn.close().await;
    }
    PlanReport {
        steps: steps(config, &found, method, mode),
        checks: checks.0,
        mode,
        needs_upgrade: needs_upgrade(&found),
    }
}

async fn connect_and_read(role: Role, server: &Server) -> Result<(Db, ServerInfo), db::DbError> {
    let mut conn = db::connect(role, server).await?;
    let info = conn.info().await?;
    Ok((conn, info))
}

/// db2 is db0's replica now and stays one until the cutover repoints it to db1: it
/// must be replicating from db0's address, both threads running.
async fn db2_follows_db0(checks: &mut Checks, config: &Config, db2: Option<&mut Db>) {
    const WHAT: &str = "db2 replicates from db0";
    let Some(db2) = db2 else {
        return;
    };
    let db0 = &config.db0;
    let host = db0.source_host().unwrap_or_default();
    match db2.replica_status().await {
        Err(e) => checks.fail(WHAT, e.to_string()),
        Ok(None) => checks.fail(
            WHAT,
            format!(
                "db2 is no replica: make it a replica of db0 ({host}:{}) first; dbm repoints \
                 it to db1 at the cutover",
                db0.port
            ),
        ),
        Ok(Some(r)) if !r.follows(host, db0.port) => checks.fail(
            WHAT,
            format!(
                "db2 replicates from {}:{}, not from db0 ({host}:{}); set db0.source_host to \
                 the address db2 uses if it is the same server",
                r.master_host, r.master_port, db0.port
            ),
        ),
        Ok(Some(r)) if !r.running() => checks.fail(
            WHAT,
            format!(
                "db2's replication from db0 is not running (IO {}, SQL {}){}",
                r.io_running,
                if r.sql_running { "Yes" } else { "No" },
                r.last_error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ),
        Ok(Some(r)) => checks.ok(
            WHAT,
            format!(
                "running from {}:{}{}{}",
                r.master_host,
                r.master_port,
                if r.using_gtid { ", with GTIDs" } else { "" },
                r.seconds_behind
                    .map(|s| format!(", {s}s behind"))
                    .unwrap_or_default()
            ),
        ),
    }
}

fn binary_logs(checks: &mut Checks, found: &Found) {
    if let Some(i) = found.get(Role::Db0) {
        checks.check(
            "db0 binary log",
            i.log_bin,
            format!("log_bin ON, binlog_format {}", i.binlog_format),
            "db0 has log_bin OFF: start it with --log-bin; replication from db0 needs its binary log"
                .to_owned(),
        );
    }
    if let Some(i) = found.get(Role::Db1) {
        checks.check(
            "db1 binary log",
            i.log_bin,
            format!("log_bin ON, binlog_format {}", i.binlog_format),
            "db1 has log_bin OFF: start it with --log-bin; db2 replicates from db1's binary log"
                .to_owned(),
        );
    }
}

fn server_ids(checks: &mut Checks, found: &Found) {
    let mut problems = Vec::new();
    for (i, a) in Role::ALL.iter().enumerate() {
        let Some(ia) = found.get(*a) else { continue };
        if ia.server_id == 0 {
            problems.push(format!(
                "{a} has server_id 0: replication needs a non-zero server_id"
            ));
        }
        for b in &Role::ALL[i + 1..] {
            if let Some(ib) = found.get(*b)
                && ia.server_id == ib.server_id
            {
                problems.push(format!(
                    "{a} and {b} both have server_id {}: give each server its own --server-id",
                    ia.server_id
                ));
            }
        }
    }
    if found.info.len() < 2 {
        return;
    }
    if problems.is_empty() {
        let ids = found
            .info
            .iter()
            .map(|(r, i)| format!("{r} {}", i.server_id))
            .collect::<Vec<_>>()
            .join(", ");
        checks.ok("server ids", format!("unique: {ids}"));
    }
    for p in problems {
        checks.fail("server ids", p);
    }
}

fn log_slave_updates(checks: &mut Checks, found: &Found) {
    if let Some(i) = found.get(Role::Db1) {
        checks.check(
            "db1 log_slave_updates",
            i.log_slave_updates,
            "ON: what db1 applies from db0 reaches db2".to_owned(),
            "db1 has log_slave_updates OFF: start it with --log-slave-updates; db1 is db2's \
             source while it still replicates from db0, and db2 sees only what db1 writes to \
             its binary log"
                .to_owned(),
        );
    }
}

fn upgrade_program(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::MariaDb => "mariadb-upgrade",
        Flavour::MySql => "mysql_upgrade",
    }
}

/// Whether db1 needs the upgrade command after the seed: `None` when unknown.
fn needs_upgrade(found: &Found) -> Option<bool> {
    let (a, b) = (found.get(Role::Db0)?, found.get(Role::Db1)?);
    Some(a.version.series() != b.version.series())
}

fn versions(checks: &mut Checks, config: &Config, found: &Found) {
    let pairs = [
        (
            Role::Db0,
            Role::Db1,
            "a physical copy of db0 cannot run on an older server",
        ),
        (
            Role::Db1,
            Role::Db2,
            "a replica must not be older than its source",
        ),
    ];
    for (src, dst, why) in pairs {
        let (Some(a), Some(b)) = (found.get(src), found.get(dst)) else {
            continue;
        };
        let what = format!("{dst} version");
        if a.flavour != b.flavour {
            checks.fail(
                what,
                format!(
                    "{src} runs {} and {dst} {}: dbm migrates between servers of one flavour",
                    a.flavour, b.flavour
                ),
            );
        } else if b.version < a.version {
            checks.fail(
                what,
                format!(
                    "{dst} runs {} {}, older than {src}'s {}: {why}",
                    b.flavour, b.version, a.version
                ),
            );
        } else if src == Role::Db0 && a.version.series() != b.version.series() {
            let program = upgrade_program(a.flavour);
            match &config.seed.upgrade_command {
                Some(c) => checks.ok(
                    what,
                    format!(
                        "{src} {} -> {dst} {}: the seed is upgraded with `{c}`",
                        a.version, b.version
                    ),
                ),
                None => checks.fail(
                    what,
                    format!(
                        "{src} runs {} and {dst} {}, another release series: set \
                         seed.upgrade_command (e.g. \"{program}\") to upgrade the copied data",
                        a.version, b.version
                    ),
                ),
            }
        } else {
            checks.ok(what, format!("{src} {} -> {dst} {}", a.version, b.version));
        }
    }
}

/// `/var/lib/mysql/` and `/var/lib/mysql` are the same directory.
fn same_dir(a: &Path, b: &str) -> bool {
    a.components().eq(Path::new(b).components())
}

fn datadirs(checks: &mut Checks, config: &Config, found: &Found) {
    for role in [Role::Db0, Role::Db1] {
        let Some(i) = found.get(role) else { continue };
        let configured = &config.server(role).datadir;
        checks.check(
            &format!("{role} datadir"),
            same_dir(configured, &i.datadir),
            format!("{}", configured.display()),
            format!(
                "{role}.datadir is {} but {role} keeps its data in {}: correct {role}.datadir",
                configured.display(),
                i.datadir
            ),
        );
    }
}

fn replication_mode(
    checks: &mut Checks,
    config: &Config,
    found: &Found,
) -> Option<ReplicationMode> {
    let infos: Vec<_> = Role::ALL.iter().filter_map(|r| found.get(*r)).collect();
    if infos.len() < 3 {
        return config.replication.mode;
    }
    let gtid_everywhere = infos.iter().all(|i| i.gtid.usable());
    let without: Vec<_> = Role::ALL
        .iter()
        .filter(|r| found.get(**r).is_some_and(|i| !i.gtid.usable()))
        .map(|r| r.as_str())
        .collect();
    match config.replication.mode {
        Some(ReplicationMode::Gtid) if !gtid_everywhere => {
            checks.fail(
                "replication mode",
                format!(
                    "replication.mode is \"gtid\" but {} have gtid_mode OFF: turn GTIDs on or \
                     use mode = \"file_pos\"",
                    without.join(" and ")
                ),
            );
            Some(ReplicationMode::Gtid)
        }
        Some(mode) => {
            checks.ok(
                "replication mode",
                format!("{} (configured)", mode.as_str()),
            );
            Some(mode)
        }
        None => {
            let mode = if gtid_everywhere {
                ReplicationMode::Gtid
            } else {
                ReplicationMode::FilePos
            };
            checks.ok(
                "replication mode",
                format!(
                    "{} ({})",
                    mode.as_str(),
                    if gtid_everywhere {
                        "all three servers support GTIDs".to_owned()
                    } else {
                        format!("no GTIDs on {}", without.join(" and "))
                    }
                ),
            );
            Some(mode)
        }
    }
}

fn seed_method(checks: &mut Checks, config: &Config, found: &Found) -> Option<SeedMethod> {
    let flavour = found.get(Role::Db0).map(|i| i.flavour);
    let fitting = flavour.map(|f| match f {
        Flavour::MariaDb => SeedMethod::Mariabackup,
        Flavour::MySql => SeedMethod::Xtrabackup,
    });
    match (config.seed.method, fitting, flavour) {
        (Some(m), Some(fit), Some(f)) if m != fit => {
            checks.fail(
                "seed method",
                format!(
                    "seed.method is \"{}\" but db0 runs {f}: use \"{}\"",
                    m.program(),
                    fit.program()
                ),
            );
            Some(m)
        }
        (Some(m), _, _) => {
            checks.ok("seed method", format!("{} (configured)", m.program()));
            Some(m)
        }
        (None, Some(fit), Some(f)) => {
            checks.ok("seed method", format!("{} (db0 runs {f})", fit.program()));
            Some(fit)
        }
        (None, _, _) => None,
    }
}

async fn tools(checks: &mut Checks, config: &Config, method: Option<SeedMethod>) {
    let Some(method) = method else { return };
    for (role, program, why) in [
        (Role::Db0, method.program(), "makes the backup"),
        (Role::Db1, method.unpacker(), "unpacks the backup stream"),
        (Role::Db1, method.program(), "prepares the backup"),
    ] {
        let host = Host::of(config, config.server(role), role.as_str());
        let what = format!("{program} on {role}");
        match host.find_program(program).await {
            Ok(Some(p)) => checks.ok(what, format!("{p} ({why})")),
            Ok(None) => checks.fail(
                what,
                format!(
                    "{program} is not installed on {} (it {why}): install it",
                    host.name()
                ),
            ),
            Err(e) => checks.fail(what, format!("{e:#}")),
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

async fn free_disk(checks: &mut Checks, config: &Config, db0: Option<&mut Db>) {
    const WHAT: &str = "db1 free disk";
    let Some(db0) = db0 else { return };
    let size = match db0.data_size().await {
        Ok(s) => s,
        Err(e) => return checks.fail(WHAT, e.to_string()),
    };
    let db1 = &config.db1;
    let host = Host::of(config, db1, "db1");
    match host.free_bytes(&db1.datadir).await {
        Ok(free) => checks.check(
            WHAT,
            free >= size,
            format!(
                "{} free in {}, db0 holds {}",
                human(free),
                db1.datadir.display(),
                human(size)
            ),
            format!(
                "only {} free in db1's {}, db0 holds {}: make room before seeding",
                human(free),
                db1.datadir.display(),
                human(size)
            ),
        ),
        Err(e) => checks.fail(WHAT, format!("{e:#}")),
    }
}

async fn replication_user(checks: &mut Checks, config: &Config, conns: &mut BTreeMap<Role, Db>) {
    let r = &config.replication;
    let user = &r.user;
    // db1 replicates from db0, db2 from db1: both are sources.
    for role in [Role::Db0, Role::Db1] {
        let what = format!("replication user on {role}");
        let Some(conn) = conns.get_mut(&role) else {
            continue;
        };
        let accounts = match conn.accounts(user).await {
            Ok(a) => a,
            Err(e) => {
                checks.fail(what, format!("{e} (dbm's user needs SELECT on mysql.user)"));
                continue;
            }
        };
        let granted: Vec<_> = accounts.iter().filter(|a| a.repl_slave).collect();
        if accounts.is_empty() {
            checks.fail(
                what,
                format!(
                    "{}: the replication user '{user}' does not exist: CREATE USER \
                     '{user}'@'<replica address>' and GRANT REPLICATION SLAVE ON *.* to it",
                    conn.endpoint
                ),
            );
            continue;
        }
        if granted.is_empty() {
            let hosts: Vec<_> = accounts
                .iter()
                .map(|a| format!("'{user}'@'{}'", a.host))
                .collect();
            checks.fail(
                what,
                format!(
                    "{}: {} lacks REPLICATION SLAVE: GRANT REPLICATION SLAVE ON *.* TO it",
                    conn.endpoint,
                    hosts.join(", ")
                ),
            );
            continue;
        }
        let hosts: Vec<_> = granted
            .iter()
            .map(|a| format!("'{user}'@'{}'", a.host))
            .collect();
        // Log in as the replica will: over TCP with the configured password.
        let server = config.server(role);
        if server.host.is_none() {
            checks.fail(
                what,
                format!(
                    "{role} has no host: the replica connects to {role} over TCP; give \
                     {role}.host and {role}.port"
                ),
            );
            continue;
        }
        let login = match db::read_secret(&r.password(), "replication") {
            Ok(password) => {
                db::connect_as(
                    format!("{role} ({})", server.address()),
                    server,
                    user,
                    password.as_ref(),
                    &r.password().hint("replication"),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match login {
            Ok(c) => {
                c.close().await;
                checks.ok(
                    what,
                    format!(
                        "{} with REPLICATION SLAVE; the password works",
                        hosts.join(", ")
                    ),
                );
            }
            Err(e) => checks.fail(what, e.to_string()),
        }
    }
}

fn steps(
    config: &Config,
    found: &Found,
    method: Option<SeedMethod>,
    mode: Option<ReplicationMode>,
) -> Vec<PlannedStep> {
    let (db0, db1, db2) = (&config.db0, &config.db1, &config.db2);
    let at = |s: &Server| match &s.ssh {
        Some(ssh) => format!(" on {ssh}"),
        None => String::new(),
    };
    let program = method.map_or("the backup tool (by db0's flavour)", SeedMethod::program);
    let unpacker = method.map_or("its unpacker", SeedMethod::unpacker);
    // The stream always passes through dbm, which counts it for the progress.
    let transport = if db0.is_local() && db1.is_local() {
        "on this machine"
    } else {
        "over ssh through this machine"
    };
    let mode = match mode {
        Some(m) => m.as_str(),
        None => "gtid or file_pos (once the servers can be asked)",
    };
    let c = &config.cutover;
    let source = |s: &Server| format!("{}:{}", s.source_host().unwrap_or("?"), s.port);
    let step = |id: StepId, what: String| PlannedStep {
        name: id.as_str(),
        what,
    };
    let mut out = vec![
        step(
            StepId::Preflight,
            "the checks above, again, before anything changes".to_owned(),
        ),
        step(
            StepId::Seed,
            format!(
                "stop db1 (`{}`{}); {program} --backup --stream of db0's {}{} into db1's \
                 {}{} through {unpacker}, {transport}",
                db1.stop_command.as_deref().unwrap_or(""),
                at(db1),
                db0.datadir.display(),
                at(db0),
                db1.datadir.display(),
                at(db1)
            ),
        ),
        step(
            StepId::Prepare,
            format!(
                "{program} --prepare in db1's {}; the binlog coordinates (file/pos, GTID) \
                 from the backup's own metadata",
                db1.datadir.display()
            ),
        ),
    ];
    let upgrade: String = match (needs_upgrade(found), &config.seed.upgrade_command) {
        (Some(false), _) => "not needed: db0 and db1 run the same release series".to_owned(),
        (Some(true), Some(c)) => format!("`{c}`{} (db0 and db1 versions differ)", at(db1)),
        (Some(true), None) => "needed, but seed.upgrade_command is not set".to_owned(),
        (None, Some(c)) => format!("`{c}`{} if the versions differ", at(db1)),
        (None, None) => "if the versions differ; seed.upgrade_command is not set".to_owned(),
    };
    out.push(step(StepId::Upgrade, upgrade));
    out.extend([
        step(
            StepId::ReplicateDb1,
            format!(
                "db1 read-only, replicating from db0 ({}) as '{}' from the backup's \
                 coordinates, {mode}",
                source(db0),
                config.replication.user
            ),
        ),
        step(
            StepId::CatchUp,
            format!(
                "a heartbeat row written on db0 until it reaches db1 and db2 within {} ms",
                c.max_lag_ms
            ),
        ),
        step(
            StepId::Freeze,
            format!(
                "db0 read-only (statements still running after {}s are killed), its other \
                 clients disconnected, its final position recorded; wait until db1 has \
                 applied it (longer than {}s: db0 writable again, the step fails)",
                c.grace_secs, c.max_catchup_secs
            ),
        ),
        step(
            StepId::Promote,
            "db1 stops replicating; its position recorded, a snapshot of it kept for verify"
                .to_owned(),
        ),
        step(
            StepId::Unfreeze,
            "db1 writable; the write freeze is measured".to_owned(),
        ),
    ]);
    if let Some(hook) = &c.hook {
        out.push(step(StepId::Hook, format!("`{hook}`")));
    }
    out.push(step(
        StepId::RepointDb2,
        format!(
            "db2 ({}) applies db0's final position, then replicates from db1 ({}) from \
             the recorded position, {mode}",
            db2.address(),
            source(db1)
        ),
    ));
    out.push(step(
        StepId::Verify,
        "row counts and chunked checksums of every table: db0 (frozen) against db1, db1 \
         against db2"
            .to_owned(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::db::{Gtid, Version};

    fn config(extra: &str) -> Config {
        let text = format!(
            "state_file = \"/var/lib/dbm/m.json\"\n\
             [db0]\nhost = \"10.0.0.10\"\nuser = \"dbm\"\npassword_env = \"P\"\ndatadir = \"/var/lib/mysql\"\n\
             [db1]\nhost = \"10.0.0.11\"\nuser = \"dbm\"\npassword_env = \"P\"\ndatadir = \"/var/lib/mysql\"\n\
             ssh = \"root@db1\"\nstart_command = \"systemctl start mariadb\"\nstop_command = \"systemctl stop mariadb\"\n\
             [db2]\nhost = \"10.0.0.12\"\nuser = \"dbm\"\npassword_env = \"P\"\ndatadir = \"/var/lib/mysql\"\n\
             [replication]\nuser = \"repl\"\npassword_env = \"R\"\n{extra}"
        );
        appliance::config::parse(&text, Path::new("plan.toml")).unwrap()
    }

    fn info(version: &str, server_id: u32, gtid: Gtid) -> ServerInfo {
        let flavour = if version.contains("MariaDB") {
            Flavour::MariaDb
        } else {
            Flavour::MySql
        };
        ServerInfo {
            version_string: version.to_owned(),
            version: Version::parse(version).unwrap(),
            flavour,
            server_id,
            log_bin: true,
            binlog_format: "ROW".to_owned(),
            log_slave_updates: true,
            gtid,
            datadir: "/var/lib/mysql/".to_owned(),
            read_only: false,
        }
    }

    fn found(infos: [ServerInfo; 3]) -> Found {
        Found {
            info: Role::ALL.into_iter().zip(infos).collect(),
        }
    }

    fn messages(checks: &Checks) -> Vec<(Status, String)> {
        checks
            .0
            .iter()
            .map(|c| (c.status, c.message.clone()))
            .collect()
    }

    const MARIA: Gtid = Gtid::MariaDb { domain_id: 0 };

    #[test]
    fn another_release_series_needs_the_upgrade_command() {
        let f = found([
            info("10.6.18-MariaDB", 1, MARIA),
            info("10.11.6-MariaDB", 2, MARIA),
            info("10.11.6-MariaDB", 3, MARIA),
        ]);
        let mut checks = Checks::default();
        versions(&mut checks, &config(""), &f);
        assert_eq!(
            messages(&checks)[0],
            (
                Status::Fail,
                "db0 runs 10.6.18 and db1 10.11.6, another release series: set \
                 seed.upgrade_command (e.g. \"mariadb-upgrade\") to upgrade the copied data"
                    .to_owned()
            )
        );
        let c = config("[seed]\nupgrade_command = \"mariadb-upgrade\"\n");
        let mut checks = Checks::default();
        versions(&mut checks, &c, &f);
        assert!(checks.0.iter().all(|c| c.status == Status::Ok));
        let names: Vec<_> = steps(&c, &f, Some(SeedMethod::Mariabackup), None)
            .iter()
            .map(|s| s.name)
            .collect();
        assert!(names.contains(&"upgrade") && !names.contains(&"hook"));
    }

    #[test]
    fn an_older_db1_or_another_flavour_fails() {
        let f = found([
            info("10.11.6-MariaDB", 1, MARIA),
            info("10.11.2-MariaDB", 2, MARIA),
            info("8.0.36", 3, Gtid::MySql { mode: None }),
        ]);
        let mut checks = Checks::default();
        versions(&mut checks, &config(""), &f);
        let m = messages(&checks);
        assert!(
            m[0].1
                .contains("db1 runs MariaDB 10.11.2, older than db0's 10.11.6")
        );
        assert!(m[1].1.contains("db1 runs MariaDB and db2 MySQL"));
    }

    #[test]
    fn gtid_is_chosen_only_where_all_three_have_it() {
        let mysql = |id, mode: &str| {
            info(
                "8.0.36",
                id,
                Gtid::MySql {
                    mode: Some(mode.to_owned()),
                },
            )
        };
        let f = found([mysql(1, "ON"), mysql(2, "OFF"), mysql(3, "ON")]);
        let mut checks = Checks::default();
        assert_eq!(
            replication_mode(&mut checks, &config(""), &f),
            Some(ReplicationMode::FilePos)
        );
        let c = config("");
        let mut c = c;
        c.replication.mode = Some(ReplicationMode::Gtid);
        let mut checks = Checks::default();
        replication_mode(&mut checks, &c, &f);
        assert_eq!(checks.0[0].status, Status::Fail);
        assert!(checks.0[0].message.contains("db1 have gtid_mode OFF"));

        // The seed method follows db0's flavour unless configured otherwise.
        let mut checks = Checks::default();
        assert_eq!(
            seed_method(&mut checks, &config(""), &f),
            Some(SeedMethod::Xtrabackup)
        );
        let c = config("[seed]\nmethod = \"mariabackup\"\n");
        let mut checks = Checks::default();
        seed_method(&mut checks, &c, &f);
        assert_eq!(
            checks.0[0].message,
            "seed.method is \"mariabackup\" but db0 runs MySQL: use \"xtrabackup\""
        );
    }

    #[test]
    fn ids_are_compared_pairwise() {
        let f = found([
            info("10.11.6-MariaDB", 7, MARIA),
            info("10.11.6-MariaDB", 7, MARIA),
            info("10.11.6-MariaDB", 7, MARIA),
        ]);
        let mut checks = Checks::default();
        server_ids(&mut checks, &f);
        let m: Vec<_> = messages(&checks).into_iter().map(|(_, m)| m).collect();
        assert_eq!(m.len(), 3);
        assert!(m[0].starts_with("db0 and db1 both have server_id 7"));
        assert!(m[2].starts_with("db1 and db2 both have server_id 7"));
    }
}
