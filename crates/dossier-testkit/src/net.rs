//! What the servers the tests start share: free loopback ports, and a watchdog shell that
//! cleans up after the test process however it ends.

use std::net::TcpListener;
use std::process::{Command, Stdio};

use anyhow::Context;

/// `count` distinct free loopback ports: all are held until every one is picked.
pub fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

/// Runs `cleanup` (a shell command) once this test process is gone: a static is never dropped
/// and a panic that aborts skips `Drop`, so a detached shell polls for the test's pid.
pub fn after_this_process(cleanup: &str) -> anyhow::Result<()> {
    let script = format!(
        "while kill -0 {test} 2>/dev/null; do sleep 1; done; {cleanup}",
        test = std::process::id(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the watchdog shell")?;
    Ok(())
}
