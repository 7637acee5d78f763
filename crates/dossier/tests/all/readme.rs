//! The README's curl walk-through, run as written against a real server.
//!
//! The only substitutions: `cargo run -q -p dossier --` becomes the binary cargo built for this
//! test (same program, no nested cargo), and `HOST` and `DOSSIER_DATA_DIR` point at the test
//! server, which the README lets the environment do.

use std::process::Command;

use crate::support::*;

fn walkthrough() -> String {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("README marks the walk-through");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("README marks the walk-through end");
    let block = &readme[start..end];
    let code_start = block.find("```bash\n").expect("a bash block") + "```bash\n".len();
    let code_end = block[code_start..].find("```").expect("the block ends") + code_start;
    block[code_start..code_end].to_owned()
}

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written() {
    let server = TestServer::start().await;
    let script = walkthrough().replace("cargo run -q -p dossier --", env!("CARGO_BIN_EXE_dossier"));
    let server_base = server.base.clone();
    let data_dir = server.data_dir();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("HOST", server_base)
            .env("DOSSIER_DATA_DIR", data_dir)
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "walk-through failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    let created: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let id = dataset_id_of(&created);
    let listed: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(listed[&id]["name"], "Profile Data Export");
}
