//! Headless Chromium for the console's end-to-end test: Debian's `chromium` driven through its
//! `chromedriver` (WebDriver) on a free loopback port.
//!
//! One chromedriver per test that asks: it starts in well under a second, and each test then
//! owns its browser sessions. The driver is killed when the [`ChromeDriver`] drops, and by a
//! watchdog shell if the test process dies first (chromedriver then ends its browsers).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::net::{after_this_process, free_ports};

const INSTALL: &str = "apt-get install chromium chromium-driver";

/// How long chromedriver may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running chromedriver on loopback.
#[derive(Debug)]
pub struct ChromeDriver {
    port: u16,
    child: Child,
    /// The Chromium binary the sessions should start (`goog:chromeOptions.binary`).
    pub chromium: PathBuf,
    /// chromedriver's own log, for a test that fails to say what the driver saw.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChromeDriver {
    /// The WebDriver URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh chromedriver, or `None` (after [`crate::missing`]: a skip, or a panic under
/// `CI=true`) when Chromium or its driver is not installed. Installed but failing to start panics.
pub fn driver() -> Option<ChromeDriver> {
    let (chromium, chromedriver) = match installed() {
        Ok(found) => found,
        Err(why) => {
            crate::missing("Chromium and chromedriver", &why, INSTALL);
            return None;
        }
    };
    Some(start(chromium, &chromedriver).unwrap_or_else(|e| panic!("chromedriver did not start: {e:#}")))
}

/// The Chromium and chromedriver binaries, found on PATH or where Debian puts them.
fn installed() -> Result<(PathBuf, PathBuf), String> {
    let chromium = find(&["chromium", "chromium-browser"], "/usr/bin/chromium")
        .ok_or_else(|| "no `chromium` on PATH".to_owned())?;
    let driver =
        find(&["chromedriver"], "/usr/bin/chromedriver").ok_or_else(|| "no `chromedriver` on PATH".to_owned())?;
    Ok((chromium, driver))
}

fn find(names: &[&str], fallback: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .chain([PathBuf::from(fallback)])
        .find(|candidate| candidate.is_file())
}

fn start(chromium: PathBuf, chromedriver: &Path) -> anyhow::Result<ChromeDriver> {
    let port = free_ports(1)?[0];
    let dir = tempfile::Builder::new().prefix("dossier-chromedriver-").tempdir()?;
    let log = dir.path().join("chromedriver.log");
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", chromedriver.display()))?;
    after_this_process(&format!("kill {} 2>/dev/null", child.id()))?;
    let mut driver = ChromeDriver {
        port,
        child,
        chromium,
        log,
        _dir: dir,
    };
    wait_listening(&mut driver)?;
    Ok(driver)
}

fn wait_listening(driver: &mut ChromeDriver) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", driver.port)).is_err() {
        if let Some(status) = driver.child.try_wait()? {
            bail!("chromedriver exited with {status}; its log: {}", driver.log.display());
        }
        if Instant::now() > deadline {
            bail!(
                "chromedriver did not listen on port {} within {START_TIMEOUT:?}",
                driver.port
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
