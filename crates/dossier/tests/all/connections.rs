//! No client holds a connection for free: a head trickled byte by byte is cut after the header
//! read timeout, a connection on which nothing moves is closed after the idle timeout, and an
//! upload that keeps moving is never cut, however long it takes.

use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server_with(header_read_timeout: Duration, idle_timeout: Duration) -> TestServer {
    TestServer::start_with(|config| {
        config.options.header_read_timeout_secs = header_read_timeout.as_secs();
        config.options.idle_timeout_secs = idle_timeout.as_secs();
    })
    .await
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (end of stream or reset); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_after_the_header_read_timeout() {
    let server = server_with(Duration::from_secs(1), Duration::from_secs(30)).await;
    let mut stream = connect(&server).await;
    let started = Instant::now();
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One header line every 200 ms, forever: the connection never goes quiet, only slow.
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for n in 0.. {
            if writer.write_all(format!("X-Slow-{n}: y\r\n").as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    trickle.abort();
    let elapsed = started.elapsed();
    assert!(closed.is_ok(), "a trickled head kept the connection for 10 s");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "cut after {elapsed:?}, configured 1 s"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let server = server_with(Duration::from_secs(30), Duration::from_secs(1)).await;

    // Connected, nothing sent.
    let mut silent = connect(&server).await;
    let started = Instant::now();
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(10)).await.is_some(),
        "a silent connection was kept for 10 s"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}, configured 1 s"
    );

    // An upload whose head promises a body that never comes: the handler waits on the client.
    let caller = server.caller(ORG, "prod").await;
    let properties = json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}}});
    let dataset = caller.create_ingest_dataset("Loyalty", "profile", properties).await;
    let batch = caller.create_batch(&dataset).await;
    let mut stalled = connect(&server).await;
    let started = Instant::now();
    let head = format!(
        "PUT /data/foundation/import/batches/{batch}/datasets/{dataset}/files/stalled.json HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nx-api-key: {}\r\nx-gw-ims-org-id: {}\r\nx-sandbox-name: prod\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n{{\"_id\": ",
        caller.token, caller.credentials.client_id, caller.credentials.org
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert_eq!(answer.as_deref(), Some(""), "a stalled body is cut without an answer");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}, configured 1 s"
    );
    // Nothing of it was recorded: the batch completes empty.
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    assert_eq!(
        caller.wait_for_batch(&batch).await["errors"][0]["code"],
        "INGEST-EMPTY-400"
    );

    // Normal requests still work, several on one keep-alive connection.
    let mut alive = connect(&server).await;
    for _ in 0..3 {
        alive
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = alive.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

#[tokio::test]
async fn an_upload_that_keeps_moving_outlasts_the_idle_timeout() {
    let server = server_with(Duration::from_secs(1), Duration::from_secs(1)).await;
    let caller = server.caller(ORG, "prod").await;
    let properties = json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}}});
    let dataset = caller.create_ingest_dataset("Loyalty", "profile", properties).await;
    let batch = caller.create_batch(&dataset).await;

    // 12 rows, one every 250 ms: 3 s of upload on a 1 s idle timeout.
    let rows = futures::stream::iter(0..12).then(|n| async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let row = json!({"_id": format!("r{n}"), "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]}, "loyalty": {"points": n}});
        Ok::<_, std::io::Error>(Bytes::from(format!("{row}\n")))
    });
    let started = Instant::now();
    let path = format!("/data/foundation/import/batches/{batch}/datasets/{dataset}/files/slow.json");
    let response = caller
        .request(Method::PUT, &path)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(rows))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(started.elapsed() > Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    assert_eq!(caller.wait_for_batch(&batch).await["recordCount"], 12);
}

#[tokio::test]
async fn dossier_serve_takes_the_timeouts_from_flags_and_environment() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dossier"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--idle-timeout-secs", "30"])
        .env("DOSSIER_HEADER_READ_TIMEOUT_SECS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("dossier listening on http://") {
            break rest.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let closed = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(closed.is_some(), "DOSSIER_HEADER_READ_TIMEOUT_SECS=1 was not applied");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}
