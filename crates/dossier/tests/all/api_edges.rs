//! The edges of the API a hostile or careless client finds (issue 12, defects 5 to 7): paging
//! offsets past what a listing can hold, JSON bodies over the size limit, and the error shape of
//! body and query errors on `/data/core/ups` routes. Everything over HTTP against the real server.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

/// 2^63: the first offset a signed 64-bit row count cannot hold.
const PAST_MAX: &str = "9223372036854775808";
/// 2^63 - 1: the largest offset any listing takes.
const MAX: &str = "9223372036854775807";

/// Every listing and the name of its offset parameter.
const LISTS: &[(&str, &str)] = &[
    ("/data/foundation/catalog/dataSets", "start"),
    ("/data/foundation/catalog/batches", "start"),
    ("/data/foundation/schemaregistry/tenant/schemas", "start"),
    ("/data/core/ups/config/mergePolicies", "start"),
    ("/data/core/ups/export/jobs", "offset"),
    ("/data/core/ups/segment/definitions", "start"),
    ("/data/core/ups/segment/jobs", "start"),
];

fn is_ups(path: &str) -> bool {
    path.starts_with("/data/core/ups")
}

/// The message of an error body, checking the body has the shape of `path`'s service:
/// UPS `{type,title,status,errors:{"<status>":[{code,message}]},requestId}`, else the platform's
/// `{type,status,title,detail}`.
fn error_message(path: &str, status: u16, body: &Value) -> String {
    assert_eq!(body["status"], status, "{path}: {body}");
    assert!(body["type"].is_string() && body["title"].is_string(), "{path}: {body}");
    assert!(body["requestId"].is_string(), "{path}: no requestId in {body}");
    if is_ups(path) {
        assert!(
            body.get("detail").is_none(),
            "{path}: platform shape on a UPS route: {body}"
        );
        let entry = &body["errors"][status.to_string()][0];
        assert!(entry["code"].is_string(), "{path}: {body}");
        entry["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {body}"))
            .to_owned()
    } else {
        assert!(
            body.get("errors").is_none(),
            "{path}: UPS shape on a platform route: {body}"
        );
        body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {body}"))
            .to_owned()
    }
}

/// Something on every listing, so a wrapped offset would show it.
async fn populate(caller: &Caller) {
    let records = caller
        .create_ingest_dataset("Edges records", "profile", json!({}))
        .await;
    caller.create_batch(&records).await;
    let dataset = caller.create_dataset("Edges").await;
    let (status, body) = caller
        .send_json(
            Method::POST,
            "/data/core/ups/segment/definitions",
            &json!({
                "name": "everyone", "profileInstanceId": "ups",
                "expression": {"type": "PQL", "format": "pql/text", "value": "homeAddress.countryCode = \"US\""},
                "schema": {"name": "_xdm.context.profile"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let segment = body["id"].as_str().unwrap().to_owned();
    let (status, body) = caller
        .send_json(
            Method::POST,
            "/data/core/ups/segment/jobs",
            &json!([{"segmentId": segment}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let job = json!({"destination": {"datasetId": dataset}, "schema": {"name": "_xdm.context.profile"}});
    let (status, body) = caller.send_json(Method::POST, "/data/core/ups/export/jobs", &job).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_offset_past_the_largest_is_refused_on_every_list_naming_the_parameter() {
    let server = TestServer::start_with(|c| c.options.export_workers = 0).await;
    let caller = server.caller(ORG, "prod").await;
    populate(&caller).await;
    for (path, param) in LISTS {
        for value in [
            PAST_MAX,
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            let (status, body) = caller.get(&format!("{path}?{param}={value}")).await;
            assert_eq!(status, 400, "{path}?{param}={value} answered {body}");
            let message = error_message(path, 400, &body);
            assert!(message.contains(&format!("'{param}'")), "{path}: {message}");
            assert!(message.contains(value), "{path}: {message}");
            assert!(
                message.contains(MAX),
                "{path}: the fix names the largest offset: {message}"
            );
        }
    }
}

#[tokio::test]
async fn the_largest_offset_is_an_empty_last_page_whose_next_never_wraps() {
    let server = TestServer::start_with(|c| c.options.export_workers = 0).await;
    let caller = server.caller(ORG, "prod").await;
    populate(&caller).await;
    for (path, param) in LISTS {
        let (status, body) = caller.get(&format!("{path}?{param}={MAX}")).await;
        // Export jobs read a bare number as a count to skip, the others as an offset.
        assert_eq!(status, 200, "{path}?{param}={MAX} answered {body}");
        let text = body.to_string();
        for shown in ["Edges", "everyone", "_xdm.context.profile"] {
            assert!(!text.contains(shown), "{path}: the first page again: {body}");
        }
    }
    let (_, jobs) = caller.get(&format!("/data/core/ups/segment/jobs?start={MAX}")).await;
    assert_eq!(jobs["_page"]["next"], Value::Null, "{jobs}");
    assert_eq!(jobs["children"], json!([]), "{jobs}");
    let (_, policies) = caller
        .get(&format!("/data/core/ups/config/mergePolicies?start={MAX}"))
        .await;
    assert_eq!(policies["_links"]["next"]["href"], "", "{policies}");
    let (_, definitions) = caller
        .get(&format!("/data/core/ups/segment/definitions?start={MAX}"))
        .await;
    assert_eq!(definitions["link"], json!({}), "{definitions}");
}

#[tokio::test]
async fn a_page_number_past_the_largest_offset_is_refused_naming_page() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let path = "/data/core/ups/segment/definitions";
    let (status, body) = caller.get(&format!("{path}?page={MAX}&limit=1000")).await;
    assert_eq!(status, 400, "{body}");
    let message = error_message(path, 400, &body);
    assert!(message.contains("'page'") && message.contains(MAX), "{message}");
}

#[tokio::test]
async fn an_empty_limit_is_the_default_and_a_large_one_is_lowered_on_every_list() {
    let server = TestServer::start_with(|c| c.options.export_workers = 0).await;
    let caller = server.caller(ORG, "prod").await;
    populate(&caller).await;
    for (path, param) in LISTS {
        for query in [
            "limit=".to_owned(),
            "limit=100000".to_owned(),
            "limit=99999999999999999999999".to_owned(),
            format!("{param}="),
        ] {
            let (status, body) = caller.get(&format!("{path}?{query}")).await;
            assert_eq!(status, 200, "{path}?{query} answered {body}");
        }
        for bad in ["0", "-1", "ten"] {
            let (status, body) = caller.get(&format!("{path}?limit={bad}")).await;
            assert_eq!(status, 400, "{path}?limit={bad} answered {body}");
            let message = error_message(path, 400, &body);
            assert!(
                message.contains("'limit'") && message.contains(bad),
                "{path}: {message}"
            );
        }
    }
    let (_, jobs) = caller.get("/data/core/ups/segment/jobs?limit=5000").await;
    assert_eq!(jobs["_page"]["pageSize"], 1, "{jobs}");
}

/// A valid JSON object of more than `bytes` bytes.
fn big_body(bytes: usize) -> String {
    format!("{{\"name\": \"{}\"}}", "x".repeat(bytes))
}

/// Every route that reads a JSON body (method, path).
const BODY_ROUTES: &[(&str, &str)] = &[
    ("POST", "/data/foundation/catalog/dataSets"),
    ("PATCH", "/data/foundation/catalog/dataSets/some-id"),
    ("POST", "/data/foundation/import/batches"),
    ("POST", "/data/foundation/schemaregistry/tenant/schemas"),
    ("POST", "/data/foundation/schemaregistry/tenant/descriptors"),
    ("POST", "/data/core/ups/config/mergePolicies"),
    ("POST", "/data/core/ups/config/mergePolicies/bulk-get"),
    ("PUT", "/data/core/ups/config/mergePolicies/some-id"),
    ("PATCH", "/data/core/ups/config/mergePolicies/some-id"),
    ("POST", "/data/core/ups/export/jobs"),
    ("POST", "/data/core/ups/segment/definitions"),
    ("POST", "/data/core/ups/segment/definitions/bulk-get"),
    ("PATCH", "/data/core/ups/segment/definitions/some-id"),
    ("POST", "/data/core/ups/segment/definitions/some-id"),
    ("POST", "/data/core/ups/segment/jobs"),
];

async fn send_raw(caller: &Caller, method: &str, path: &str, content_type: Option<&str>, body: String) -> (u16, Value) {
    let mut request = caller.request(method.parse().unwrap(), path).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    into_parts(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_json_body_over_the_default_limit_is_413_naming_the_limit_and_batch_ingestion() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    for (method, path) in BODY_ROUTES {
        let (status, body) = send_raw(
            &caller,
            method,
            path,
            Some("application/json"),
            big_body(2 * 1024 * 1024),
        )
        .await;
        assert_eq!(status, 413, "{method} {path} answered {body}");
        let message = error_message(path, 413, &body);
        assert!(message.contains("2097152"), "{method} {path}: {message}");
        assert!(message.contains("max_json_body_bytes"), "{method} {path}: {message}");
        assert!(
            message.contains("/data/foundation/import/batches"),
            "{method} {path}: {message}"
        );
    }
    // Just under the limit is read (and then judged on its content, not its size).
    let (status, body) = send_raw(
        &caller,
        "POST",
        "/data/foundation/catalog/dataSets",
        Some("application/json"),
        big_body(2 * 1024 * 1024 - 100),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn the_json_body_limit_is_configurable() {
    let server = TestServer::start_with(|c| c.options.max_json_body_bytes = 1000).await;
    let caller = server.caller(ORG, "prod").await;
    for path in [
        "/data/foundation/catalog/dataSets",
        "/data/core/ups/segment/definitions",
    ] {
        let (status, body) = send_raw(&caller, "POST", path, Some("application/json"), big_body(1000)).await;
        assert_eq!(status, 413, "{path}: {body}");
        let message = error_message(path, 413, &body);
        assert!(message.contains("1000 bytes"), "{message}");
        // A body sent in chunks, without Content-Length, is counted as it arrives.
        let chunks =
            futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 100]))));
        let response = caller
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap();
        let (status, body) = into_parts(response).await;
        assert_eq!(status, 413, "{path}: {body}");
        error_message(path, 413, &body);
    }
    let dataset: Value = serde_json::from_str(TUTORIAL_DATASET).unwrap();
    let (status, body) = caller
        .send_json(Method::POST, "/data/foundation/catalog/dataSets", &dataset)
        .await;
    assert_eq!(status, 201, "a body under the limit is read: {body}");
}

#[tokio::test]
async fn body_errors_on_ups_routes_have_the_ups_shape_and_elsewhere_the_platform_shape() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    for (method, path) in BODY_ROUTES {
        let (status, body) = send_raw(&caller, method, path, Some("application/json"), "{\"name\": ".into()).await;
        assert_eq!(status, 400, "{method} {path} answered {body}");
        let message = error_message(path, 400, &body);
        assert!(message.contains("not valid JSON"), "{method} {path}: {message}");
        let (status, body) = send_raw(&caller, method, path, None, "{}".into()).await;
        assert_eq!(status, 415, "{method} {path} answered {body}");
        let message = error_message(path, 415, &body);
        assert!(
            message.contains("Content-Type: application/json"),
            "{method} {path}: {message}"
        );
        let (status, body) = send_raw(&caller, method, path, Some("text/plain"), "{}".into()).await;
        assert_eq!(status, 415, "{method} {path} answered {body}");
        error_message(path, 415, &body);
    }
    // `+json` media types and parameters are JSON too.
    let (status, body) = send_raw(
        &caller,
        "POST",
        "/data/core/ups/segment/jobs",
        Some("application/vnd.adobe.xed+json; charset=utf-8"),
        "[]".into(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message("/data/core/ups/segment/jobs", 400, &body).contains("'body'"),
        "{body}"
    );
}

#[tokio::test]
async fn every_ups_error_has_the_ups_shape() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    for (method, path, status) in [
        ("GET", "/data/core/ups/export/jobs?status=DONE", 400),
        ("GET", "/data/core/ups/export/jobs/12345", 404),
        ("DELETE", "/data/core/ups/export/jobs", 405),
        ("GET", "/data/core/ups/no/such/route", 404),
        ("GET", "/data/core/ups/config/mergePolicies/nope", 404),
        ("GET", "/data/core/ups/segment/jobs?sort=size", 400),
        ("GET", "/data/core/ups/access/entities", 400),
    ] {
        let (got, body) = send_raw(&caller, method, path, None, String::new()).await;
        assert_eq!(got, status, "{method} {path} answered {body}");
        error_message(path, status, &body);
    }
}
