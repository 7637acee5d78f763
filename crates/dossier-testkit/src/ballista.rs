//! A Ballista cluster of real `dossier` processes on loopback: one `dossier cluster scheduler`
//! and N `dossier cluster executor`s on free ports, each logging to a file of its own. Started
//! by the tests (and the cluster bench) themselves; killed when dropped, or by a watchdog shell
//! if the test process dies first.
//!
//! Ready means every executor has registered: the scheduler's REST API (`/api/executors`, on
//! its gRPC port) lists each executor's Flight port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::net::free_ports;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long the scheduler and the executors may take to start and register.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Tasks each executor runs at once: two executors of two tasks on a laptop leave room for the
/// test itself.
const CONCURRENT_TASKS: u16 = 2;

/// One scheduler and its executors, as processes of the `dossier` binary.
#[derive(Debug)]
pub struct BallistaCluster {
    /// Logs and the executors' work dirs.
    dir: tempfile::TempDir,
    scheduler: Node,
    executors: Vec<Node>,
}

/// One process of the cluster.
#[derive(Debug)]
struct Node {
    name: String,
    /// The scheduler's gRPC/REST port, or an executor's Flight port.
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl BallistaCluster {
    /// Starts a scheduler and `executors` executors of `binary` (the `dossier` binary, built
    /// with the `cluster` feature) over the lake at `lake_url`, and waits until every executor
    /// has registered.
    pub fn start(binary: &Path, lake_url: &str, executors: usize) -> anyhow::Result<Self> {
        Self::start_with_env(binary, lake_url, executors, &[])
    }

    /// [`BallistaCluster::start`] with variables added to each process's environment (an S3
    /// lake's `AWS_*`).
    pub fn start_with_env(
        binary: &Path,
        lake_url: &str,
        executors: usize,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        Self::start_configured(binary, lake_url, executors, CONCURRENT_TASKS, env)
    }

    /// [`BallistaCluster::start_with_env`] with each executor's `--concurrent-tasks` given: the
    /// bench splits the machine's cores between its executors.
    pub fn start_configured(
        binary: &Path,
        lake_url: &str,
        executors: usize,
        concurrent_tasks: u16,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("dossier-ballista-")
            .tempdir()
            .context("cannot create a temp folder")?;
        // Two ports per executor (Flight, gRPC) and the scheduler's.
        let ports = free_ports(1 + 2 * executors)?;
        let root = dir.path().to_path_buf();
        let launcher = Launcher {
            binary,
            lake_url,
            env,
            dir: &root,
            concurrent_tasks,
        };
        let scheduler_address = format!("127.0.0.1:{}", ports[0]);
        let scheduler = launcher.spawn("scheduler", ports[0], &["scheduler", "--listen", &scheduler_address])?;
        let mut cluster = Self {
            dir,
            scheduler,
            executors: Vec::new(),
        };
        for (i, pair) in ports[1..].chunks(2).enumerate() {
            let executor = launcher.spawn_executor(i, &scheduler_address, pair[0], pair[1])?;
            cluster.executors.push(executor);
        }
        watchdog(&cluster.pids())?;
        cluster.wait_registered()?;
        Ok(cluster)
    }

    /// `df://127.0.0.1:<port>`, the scheduler as `--cluster-url` takes it.
    pub fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler.port)
    }

    /// The scheduler's port (gRPC and REST API).
    pub fn scheduler_port(&self) -> u16 {
        self.scheduler.port
    }

    /// Kills executor `i` with SIGKILL, as a machine lost would, and waits for it to be gone.
    pub fn kill_executor(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.executors.get_mut(i).with_context(|| format!("no executor {i}"))?;
        let mut child = node
            .child
            .take()
            .with_context(|| format!("executor {i} is not running"))?;
        child.kill().context("cannot kill the executor")?;
        child.wait().context("cannot wait for the executor")?;
        Ok(())
    }

    /// Whether the scheduler lists executor `i` as registered.
    pub fn is_registered(&self, i: usize) -> anyhow::Result<bool> {
        let executors = self.registered()?;
        Ok(executors.contains(&port_field(self.executors[i].port)))
    }

    /// The scheduler's `/api/executors` answer (a JSON array).
    pub fn registered(&self) -> anyhow::Result<String> {
        http_get(self.scheduler.port, "/api/executors")
    }

    /// The scheduler's `/api/jobs` answer (a JSON array).
    pub fn jobs(&self) -> anyhow::Result<String> {
        http_get(self.scheduler.port, "/api/jobs")
    }

    /// The body of the scheduler's REST API at `path` (`/api/job/<id>/stages`, ...).
    pub fn api(&self, path: &str) -> anyhow::Result<String> {
        http_get(self.scheduler.port, path)
    }

    /// The last lines of every process's log, for a failing test's message.
    pub fn logs(&self) -> String {
        std::iter::once(&self.scheduler)
            .chain(&self.executors)
            .map(Node::tail)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The executors' process ids, in start order (the bench reads their peak memory).
    pub fn executor_pids(&self) -> Vec<u32> {
        self.executors
            .iter()
            .filter_map(|node| node.child.as_ref().map(Child::id))
            .collect()
    }

    fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.scheduler)
            .chain(&self.executors)
            .filter_map(|node| node.child.as_ref().map(Child::id))
            .collect()
    }

    fn wait_registered(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_running()?;
            let registered = self.registered().unwrap_or_default();
            if self
                .executors
                .iter()
                .all(|executor| registered.contains(&port_field(executor.port)))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the executors did not all register within {START_TIMEOUT:?} (registered: {registered}); logs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fails, with the logs, when a process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        for node in std::iter::once(&mut self.scheduler).chain(&mut self.executors) {
            if let Some(child) = &mut node.child
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited ({status}) while starting; its log:\n{}",
                    node.name,
                    node.tail()
                );
            }
        }
        Ok(())
    }

    /// Where the logs and work dirs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for BallistaCluster {
    fn drop(&mut self) {
        for node in std::iter::once(&mut self.scheduler).chain(&mut self.executors) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Node {
    fn tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- {} ({}):\n{tail}", self.name, self.log.display())
    }
}

/// Starts the processes of one cluster.
struct Launcher<'a> {
    binary: &'a Path,
    lake_url: &'a str,
    env: &'a [(&'a str, String)],
    dir: &'a Path,
    concurrent_tasks: u16,
}

impl Launcher<'_> {
    fn spawn_executor(&self, i: usize, scheduler: &str, flight: u16, grpc: u16) -> anyhow::Result<Node> {
        let work_dir = self.dir.join(format!("executor-{i}"));
        std::fs::create_dir_all(&work_dir)?;
        let listen = format!("127.0.0.1:{flight}");
        let (grpc, tasks) = (grpc.to_string(), self.concurrent_tasks.to_string());
        let work_dir = work_dir.display().to_string();
        let args = [
            "executor",
            "--scheduler",
            scheduler,
            "--listen",
            &listen,
            "--grpc-port",
            &grpc,
            "--work-dir",
            &work_dir,
            "--concurrent-tasks",
            &tasks,
        ];
        self.spawn(&format!("executor-{i}"), flight, &args)
    }

    /// Runs `dossier --lake-url <lake> cluster <args>`, logging to `<name>.log`.
    fn spawn(&self, name: &str, port: u16, args: &[&str]) -> anyhow::Result<Node> {
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(self.binary)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--lake-url", self.lake_url, "cluster"])
            .args(args)
            .envs(self.env.iter().map(|(key, value)| (*key, value)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        Ok(Node {
            name: name.to_owned(),
            port,
            log,
            child: Some(child),
        })
    }
}

/// How `/api/executors` writes an executor's Flight port.
fn port_field(port: u16) -> String {
    format!("\"port\":{port}")
}

/// Kills `pids` once this test process is gone: a panic that aborts skips `Drop`.
fn watchdog(pids: &[u32]) -> anyhow::Result<()> {
    let pids = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    crate::net::after_this_process(&format!("kill -9 {pids} 2>/dev/null"))
}

/// The body of `GET path` on loopback `port`, if the answer is 200.
fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path} answered: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}
