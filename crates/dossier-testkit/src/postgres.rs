//! A private PostgreSQL 15 cluster for tests: `initdb` + `pg_ctl` from Debian's `postgresql-15`
//! into a temp folder, on a free loopback port, as the `postgres` user when run as root.
//!
//! One cluster per test process, started by the first [`database`] call; each call then creates a
//! fresh database, so tests never see each other's rows. The cluster runs with durability off
//! (`fsync`, `synchronous_commit`, `full_page_writes`): a crash loses nothing a test needs.
//!
//! Statics are never dropped, so the cluster cannot be stopped by a destructor: a watchdog shell
//! started with it waits for the test process to exit, then stops the server (`-m immediate`)
//! and removes the folder.
//!
//! `dossier bench run --stores postgres-s3` starts a cluster of its own in its work folder
//! ([`PgCluster::start_in`]) and stops it when done ([`PgCluster::stop`]); the watchdog is then
//! only the safety net of a run cut short.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const INSTALL: &str = "apt-get install postgresql-15";

/// A database of its own in the test process's cluster. The database is left behind when the
/// value drops; the whole cluster goes when the process exits.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`: trust authentication, no password.
    pub url: String,
    /// The database's name.
    pub name: String,
    /// The cluster's port on 127.0.0.1.
    pub port: u16,
}

/// A running cluster on 127.0.0.1, trust authentication, user `postgres`.
#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    data: PathBuf,
    as_postgres: bool,
}

static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(1);

/// A fresh, empty database in this process's private cluster, started on first use. `None` when
/// PostgreSQL 15 is not installed: the test skips, having said so — or, under `CI=true`, the call
/// panics (see [`crate::missing`]). A cluster that is installed but fails to start panics.
pub fn database() -> Option<PgDatabase> {
    if !available() {
        return None;
    }
    let cluster = match CLUSTER.get_or_init(|| PgCluster::start().map_err(|e| format!("{e:#}"))) {
        Ok(cluster) => cluster,
        Err(e) => panic!("the private PostgreSQL cluster did not start: {e}"),
    };
    let name = format!("test_{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
    Some(cluster.create_database(&name).unwrap_or_else(|e| panic!("{e:#}")))
}

/// Whether PostgreSQL 15 is installed; when not, [`crate::missing`] has said so (and panicked
/// under `CI=true`).
pub fn available() -> bool {
    let installed = check_installed();
    if let Err(why) = &installed {
        crate::missing("PostgreSQL 15", why, INSTALL);
    }
    installed.is_ok()
}

/// Whether PostgreSQL 15 is installed, as an error saying how to install it.
fn check_installed() -> Result<(), String> {
    match Path::new(BIN).join("initdb").exists() {
        true => Ok(()),
        false => Err(format!("{BIN}/initdb not found")),
    }
}

/// Whether this process runs as root, where PostgreSQL refuses to run and `postgres` runs it.
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A command for one of the cluster's programs, as `postgres` when this process is root.
fn pg_command(program: &str, as_postgres: bool) -> Command {
    let path = format!("{BIN}/{program}");
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How much a cluster's commits survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Tests: a commit is not flushed (`fsync`, `synchronous_commit`, `full_page_writes` off); a
    /// crash of the machine loses what a test would throw away anyway.
    Fast,
    /// Benchmarks: PostgreSQL's defaults (every commit flushed), with a production-sized
    /// `shared_buffers`, so the comparison with SQLite (WAL, `synchronous=NORMAL`) is not
    /// flattered.
    Durable,
}

impl Durability {
    fn settings(self) -> &'static str {
        match self {
            Self::Fast => "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB",
            Self::Durable => "-c shared_buffers=512MB",
        }
    }
}

impl PgCluster {
    fn start() -> anyhow::Result<Self> {
        // Kept past this function: the watchdog removes it once the server has stopped.
        let dir: PathBuf = tempfile::Builder::new()
            .prefix("dossier-pg-")
            .tempdir()
            .context("a temp folder for the cluster")?
            .keep();
        Self::start_in(&dir, Durability::Fast)
    }

    /// Starts a new cluster in `dir` (created; it should be empty). The folder is removed once
    /// this process exits, by the watchdog that also stops the server if [`PgCluster::stop`] was
    /// not called.
    pub fn start_in(dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        check_installed()
            .map_err(|why| anyhow::anyhow!("PostgreSQL 15 is not available ({why}); install it with: {INSTALL}"))?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let as_postgres = running_as_root();
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:"]).arg(&dir);
            run(chown, "chown of the cluster folder to postgres")?;
        }
        let data = dir.join("data");
        let mut initdb = pg_command("initdb", as_postgres);
        initdb
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data);
        run(initdb, "initdb")?;

        // A free port can be taken between the probe and the start; try a few.
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 {}",
                dir.display(),
                durability.settings()
            );
            let mut start = pg_command("pg_ctl", as_postgres);
            start
                .args(["-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-o", &options, "start"]);
            match run(start, "pg_ctl start") {
                Ok(()) => {
                    watch(&dir, &data, as_postgres)?;
                    return Ok(Self {
                        port,
                        data,
                        as_postgres,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        Err(last.expect("three attempts").context(format!("server log:\n{log}")))
    }

    /// The cluster's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the empty database `name` (a plain identifier).
    pub fn create_database(&self, name: &str) -> anyhow::Result<PgDatabase> {
        self.psql(&format!("CREATE DATABASE {name}"))
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        Ok(PgDatabase {
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
            name: name.to_owned(),
            port: self.port,
        })
    }

    /// Stops the server (`-m fast`: connections are closed, nothing is kept anyway).
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut stop = pg_command("pg_ctl", self.as_postgres);
        stop.args(["-w", "-D"]).arg(&self.data).args(["stop", "-m", "fast"]);
        run(stop, "pg_ctl stop")
    }

    fn psql(&self, sql: &str) -> anyhow::Result<()> {
        let mut psql = Command::new(format!("{BIN}/psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]);
        run(psql, "psql")
    }
}

/// Starts the shell that stops the server and removes `dir` once this process has exited.
fn watch(dir: &Path, data: &Path, as_postgres: bool) -> anyhow::Result<()> {
    let stop = if as_postgres {
        "runuser -u postgres -- \"$0\"/pg_ctl -D \"$2\" stop -m immediate"
    } else {
        "\"$0\"/pg_ctl -D \"$2\" stop -m immediate"
    };
    let script = format!("while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; {stop}; rm -rf \"$3\"");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .arg(std::process::id().to_string())
        .arg(data)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the cluster's watchdog")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_gets_its_own_database_in_one_cluster() {
        let Some(first) = database() else { return };
        let second = database().expect("a second database");
        assert_ne!(first.name, second.name);
        assert_eq!(first.port, second.port);
        assert!(first.url.starts_with("postgres://postgres@127.0.0.1:"));
        let cluster = CLUSTER.get().unwrap().as_ref().unwrap();
        cluster
            .psql(&format!("SELECT 1 FROM pg_database WHERE datname = '{}'", second.name))
            .expect("the cluster answers");
    }
}
