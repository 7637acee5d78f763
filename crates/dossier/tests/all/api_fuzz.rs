//! Fuzz-style property tests over the API (issue 12): random JSON bodies for every route that
//! reads one (valid bodies with one part replaced, removed or added, and bodies of any shape),
//! and random list queries. Whatever arrives, the server never answers 5xx, never drops the
//! connection (a panicking handler would), answers every error in its route's shape, and every
//! 400 names what was wrong: the field or parameter, quoted.
//!
//! Case counts are modest (a debug build on a shared machine); `PROPTEST_CASES` raises them.

use crate::support::*;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// Field names the routes read, so random objects often reach the validation of real fields.
const FIELD_NAMES: &[&str] = &[
    "name",
    "description",
    "schemaRef",
    "id",
    "contentType",
    "fileDescription",
    "persisted",
    "format",
    "containerFormat",
    "aspect",
    "tags",
    "datasetId",
    "inputFormat",
    "partialIngestion",
    "fields",
    "mergePolicy",
    "version",
    "filter",
    "segments",
    "segmentId",
    "segmentNs",
    "status",
    "segmentQualificationTime",
    "startTime",
    "endTime",
    "fromIngestTimestamp",
    "emptyProfiles",
    "additionalFields",
    "eventList",
    "destination",
    "segmentPerBatch",
    "schema",
    "evaluationInfo",
    "segmentation",
    "identityGraph",
    "type",
    "attributeMerge",
    "order",
    "default",
    "isActiveOnEdge",
    "profileInstanceId",
    "expression",
    "value",
    "batch",
    "enabled",
    "continuous",
    "synchronous",
    "mergePolicyId",
    "ids",
    "op",
    "path",
    "title",
    "meta:class",
    "properties",
    "@type",
    "xdm:sourceSchema",
    "xdm:sourceVersion",
    "xdm:sourceProperty",
    "xdm:namespace",
    "xdm:property",
    "xdm:isPrimary",
    "payloadSchema",
];

/// Strings that mean something somewhere (ids, enum values, times, PQL, paths) or that break
/// naive code (empty, huge numbers, separators, non-ASCII).
const INTERESTING: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "9223372036854775808",
    "18446744073709551616",
    "1e400",
    "null",
    "true",
    "none",
    "pdg",
    "timestampOrdered",
    "dataSetPrecedence",
    "realized",
    "existing",
    "exited",
    "ups",
    "UPS",
    "AAM",
    "PQL",
    "pql/text",
    "pql/json",
    "parquet",
    "json",
    "csv",
    "_xdm.context.profile",
    "_xdm.context.experienceevent",
    "https://ns.adobe.com/xdm/context/profile__union",
    "https://ns.adobe.com/xdm/context/profile",
    "timestampOrdered-none-mp",
    "2019-09-01T00:00:00Z",
    "2018-10-25T13:22:04-07:00",
    "not a time",
    "identities.id",
    "personalEmail.address,identities.id",
    "homeAddress.countryCode = \"US\"",
    "x = ",
    "((((",
    "xEvent[eventType = \"a\"].count() > 0",
    "/name",
    "/identityGraph.type",
    "replace",
    "add",
    "remove",
    "Email",
    "ECID",
    "xdm:descriptorIdentity",
    "xdm:code",
    "/personalEmail/address",
    "a/b/../c",
    "%00",
    "é\u{0}ß",
    "🙂",
    "enabled:true",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        select(INTERESTING).prop_map(|s| json!(s)),
        "\\PC{0,16}".prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(FIELD_NAMES).prop_map(str::to_owned), 1 => "[a-zA-Z.:/@]{0,10}"]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON pointers to every node of `value`, the root included.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One change to a valid body.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, Value),
    Remove(Index),
    Add(Index, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), key(), any_json()).prop_map(|(i, k, v)| Mutation::Add(i, k, v)),
    ]
}

fn mutate(mut body: Value, change: &Mutation) -> Value {
    let mut all = Vec::new();
    pointers(&body, String::new(), &mut all);
    match change {
        Mutation::Replace(at, value) => {
            if let Some(node) = body.pointer_mut(&all[at.index(all.len())]) {
                *node = value.clone();
            }
        }
        Mutation::Remove(at) => {
            let pointer = &all[at.index(all.len())];
            if let Some((parent, last)) = pointer.rsplit_once('/') {
                let last = last.replace("~1", "/").replace("~0", "~");
                match body.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&last);
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(i) = last.parse::<usize>() {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::Add(at, name, value) => match body.pointer_mut(&all[at.index(all.len())]) {
            Some(Value::Object(map)) => {
                map.insert(name.clone(), value.clone());
            }
            Some(Value::Array(items)) => items.push(value.clone()),
            _ => {}
        },
    }
    body
}

/// A body as sent: JSON text, sometimes cut short so that it is no JSON at all.
fn sent_text(body: &Value, cut: Option<Index>) -> String {
    let text = body.to_string();
    match cut {
        None => text,
        Some(at) => {
            let mut end = at.index(text.len().max(1));
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_owned()
        }
    }
}

/// A body to send: a valid one changed once or twice, or anything at all.
fn body_for(template: Value) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::collection::vec(mutation(), 1..3).prop_map(move |changes| {
            changes.iter().fold(template.clone(), mutate)
        }),
        1 => any_json(),
    ]
}

/// The service shape of an error body, and its message.
fn error_message(path: &str, status: u16, body: &Value) -> Result<String, TestCaseError> {
    let shaped = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!(
                "{path}: {status} not in its service's shape: {body}"
            )))
        }
    };
    shaped(body["status"] == status && body["requestId"].is_string() && body["title"].is_string())?;
    if path.starts_with("/data/core/ups") {
        let entry = &body["errors"][status.to_string()][0];
        shaped(entry["code"].is_string() && body.get("detail").is_none())?;
        Ok(entry["message"].as_str().unwrap_or_default().to_owned())
    } else {
        shaped(body.get("errors").is_none())?;
        Ok(body["detail"].as_str().unwrap_or_default().to_owned())
    }
}

/// The properties every answer has: never 5xx, an error in its route's shape with a message,
/// and a 400 that quotes the field or parameter it is about.
fn check_answer(label: &str, path: &str, status: u16, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{label} answered {status}: {body}");
    if status >= 400 {
        let message = error_message(path, status, body)?;
        prop_assert!(message.len() > 10, "{label}: {status} without a message: {body}");
        if status == 400 {
            // A field or parameter is quoted; a body that is not JSON at all is named as the body.
            let quoted = message.split('\'').nth(1).is_some_and(|name| !name.is_empty());
            let body_named = message.starts_with("The body");
            prop_assert!(quoted || body_named, "{label}: a 400 that names no field: {message}");
        }
    }
    Ok(())
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A server whose jobs stay queued, a caller, and the ids the templates refer to.
struct Fixture {
    runtime: Runtime,
    _server: TestServer,
    caller: Caller,
    dataset: String,
    /// A dataset of a profile schema, which ingestion batches may target.
    records: String,
    policy: String,
    definition: String,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, caller, [dataset, records, policy, definition]) = runtime.block_on(async {
        let server = TestServer::start_with(|c| c.options.export_workers = 0).await;
        let caller = server.caller(ORG, "prod").await;
        let dataset = caller.create_dataset("Fuzz target").await;
        let records = caller.create_ingest_dataset("Fuzz records", "profile", json!({})).await;
        let (status, policy) = caller
            .send_json(
                Method::POST,
                "/data/core/ups/config/mergePolicies",
                &json!({"name": "fuzz", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
                        "schema": {"name": "_xdm.context.profile"}}),
            )
            .await;
        assert_eq!(status, 200, "{policy}");
        let (status, definition) = caller
            .send_json(Method::POST, "/data/core/ups/segment/definitions", &definition_template())
            .await;
        assert_eq!(status, 200, "{definition}");
        let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
        (server, caller.clone(), [dataset, records, id(&policy), id(&definition)])
    });
    Fixture {
        runtime,
        _server: server,
        caller,
        dataset,
        records,
        policy,
        definition,
    }
}

fn definition_template() -> Value {
    json!({
        "name": "fuzzed", "profileInstanceId": "ups", "description": "d",
        "expression": {"type": "PQL", "format": "pql/text", "value": "homeAddress.countryCode = \"US\""},
        "evaluationInfo": {"batch": {"enabled": true}, "continuous": {"enabled": false}, "synchronous": {"enabled": false}},
        "schema": {"name": "_xdm.context.profile"}, "mergePolicyId": "timestampOrdered-none-mp"
    })
}

/// Every route that reads a JSON body, with a valid body for it.
fn body_routes(f: &Fixture) -> Vec<(Method, String, Value)> {
    let dataset: Value = serde_json::from_str(TUTORIAL_DATASET).unwrap();
    let policy = json!({
        "name": "p", "identityGraph": {"type": "none"},
        "attributeMerge": {"type": "dataSetPrecedence", "order": [f.dataset]},
        "schema": {"name": "_xdm.context.profile"}, "default": false, "isActiveOnEdge": false
    });
    let export = json!({
        "fields": "identities.id,personalEmail.address",
        "mergePolicy": {"id": f.policy, "version": 1},
        "filter": {
            "segments": [{"segmentId": f.definition, "segmentNs": "ups", "status": ["realized", "existing"]}],
            "segmentQualificationTime": {"startTime": "2019-09-01T00:00:00Z", "endTime": "2019-09-02T00:00:00Z"},
            "fromIngestTimestamp": "2018-10-25T13:22:04-07:00", "emptyProfiles": false
        },
        "additionalFields": {"eventList": {"fields": "environment.browserDetails.name", "filter": {"fromIngestTimestamp": "2018-10-25T13:22:04-07:00"}}},
        "destination": {"datasetId": f.dataset, "segmentPerBatch": false},
        "schema": {"name": "_xdm.context.profile"},
        "evaluationInfo": {"segmentation": false}
    });
    let schema = json!({
        "title": "Fuzz schema", "type": "object", "meta:class": "https://ns.adobe.com/xdm/context/profile",
        "properties": {"loyalty": {"type": "object", "properties": {"id": {"type": "string"}, "points": {"type": "integer"}}}}
    });
    let descriptor = json!({
        "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": "https://ns.adobe.com/acme/schemas/1",
        "xdm:sourceVersion": 1, "xdm:sourceProperty": "/personalEmail/address", "xdm:namespace": "Email",
        "xdm:property": "xdm:code", "xdm:isPrimary": true
    });
    let patch = json!([{"op": "replace", "path": "/name", "value": "renamed"}]);
    let policy_path = format!("/data/core/ups/config/mergePolicies/{}", f.policy);
    let definition_path = format!("/data/core/ups/segment/definitions/{}", f.definition);
    vec![
        (Method::POST, "/data/foundation/catalog/dataSets".into(), dataset),
        (
            Method::PATCH,
            format!("/data/foundation/catalog/dataSets/{}", f.dataset),
            json!({"name": "after", "description": "d", "tags": {"a": ["b"]}}),
        ),
        (
            Method::POST,
            "/data/foundation/import/batches".into(),
            json!({"datasetId": f.records, "inputFormat": {"format": "json"}, "partialIngestion": false}),
        ),
        (
            Method::POST,
            "/data/foundation/schemaregistry/tenant/schemas".into(),
            schema,
        ),
        (
            Method::POST,
            "/data/foundation/schemaregistry/tenant/descriptors".into(),
            descriptor,
        ),
        (
            Method::POST,
            "/data/core/ups/config/mergePolicies".into(),
            policy.clone(),
        ),
        (
            Method::POST,
            "/data/core/ups/config/mergePolicies/bulk-get".into(),
            json!({"ids": [{"id": f.policy}, {"id": "timestampOrdered-none-mp"}]}),
        ),
        (Method::PUT, policy_path.clone(), policy),
        (Method::PATCH, policy_path, patch.clone()),
        (Method::POST, "/data/core/ups/export/jobs".into(), export),
        (
            Method::POST,
            "/data/core/ups/segment/definitions".into(),
            definition_template(),
        ),
        (
            Method::POST,
            "/data/core/ups/segment/definitions/bulk-get".into(),
            json!({"ids": [{"id": f.definition}]}),
        ),
        (Method::PATCH, definition_path.clone(), patch),
        (Method::POST, definition_path, json!({"description": "by POST"})),
        (
            Method::POST,
            "/data/core/ups/segment/jobs".into(),
            json!([{"segmentId": f.definition}]),
        ),
        (
            Method::POST,
            "/data/core/ups/config/schedules".into(),
            json!({"name": "Nightly", "type": "batch_segmentation", "properties": {"segments": [f.definition]},
                   "schedule": "0 0 1 ? * MON-FRI", "state": "inactive"}),
        ),
        (
            Method::POST,
            "/data/core/ups/config/schedules".into(),
            json!({"name": "Nightly export", "type": "export", "schedule": "0 0/30 1-3 * * ?", "state": "inactive",
                   "properties": {"exportJob": {"fields": "identityMap", "destination": {"datasetId": f.dataset},
                                                "schema": {"name": "_xdm.context.profile"},
                                                "filter": {"fromIngestTimestamp": "lastRun"}}}}),
        ),
    ]
}

#[test]
fn random_bodies_on_every_body_route_never_5xx_and_every_400_names_the_field() {
    let f = fixture();
    for (method, path, template) in body_routes(&f) {
        let label = format!("{method} {path}");
        let mut runner = TestRunner::new(config());
        let cut = prop::option::weighted(0.2, any::<Index>());
        let result = runner.run(&(body_for(template), cut), |(body, cut)| {
            let text = sent_text(&body, cut);
            let (status, answer) = f.runtime.block_on(async {
                let request = f
                    .caller
                    .request(method.clone(), &path)
                    .header("content-type", "application/json")
                    .body(text.clone());
                into_parts(request.send().await.unwrap()).await
            });
            check_answer(&format!("{label} with {text}"), &path, status, &answer)
        });
        if let Err(failure) = result {
            panic!("{label}: {failure}");
        }
    }
    // The server is still there for everyone else.
    let (status, _) = f.runtime.block_on(f.caller.get("/data/foundation/catalog/dataSets"));
    assert_eq!(status, 200);
}

/// Parameter names the listings read, and values that stress them.
const PARAMS: &[&str] = &[
    "limit",
    "start",
    "offset",
    "page",
    "orderBy",
    "orderby",
    "sort",
    "status",
    "properties",
    "name",
    "dataSet",
    "default",
    "schema.name",
    "identityGraph.type",
    "attributeMerge.type",
    "isActiveOnEdge",
    "evaluationInfo.batch.enabled",
    "evaluationInfo.continuous.enabled",
    "entityId",
    "entityIdNS",
    "mergePolicyId",
    "fields",
];
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "+5",
    " 7 ",
    "100",
    "1000",
    "1001",
    "100000",
    "9223372036854775806",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "1.5",
    "1e3",
    "abc",
    "true",
    "FALSE",
    "desc:created",
    "asc:name",
    "-name",
    "+name",
    "name",
    "creationTime:asc",
    "-creationTime",
    "title",
    "-title",
    "NEW",
    "succeeded",
    "success",
    "1538573416687_722",
    "_",
    "1_",
    "_1",
    "x_y",
    "-1_-1",
    "_xdm.context.profile",
    "pdg",
    "none",
    "timestampOrdered",
    "identities.id",
    "a,,b",
    "%",
    "é",
    "🙂",
];

/// Random parameters, and half the time the listing's own offset parameter last, with a value
/// near the largest offset or any whole number.
fn list_query(offset: Option<&'static str>) -> impl Strategy<Value = Vec<(String, String)>> {
    let random = prop::collection::vec(
        (
            select(PARAMS).prop_map(str::to_owned),
            prop_oneof![3 => select(VALUES).prop_map(str::to_owned), 1 => "\\PC{0,12}"],
        ),
        0..5,
    );
    let offset_value = prop_oneof![
        (0u64..=1024).prop_map(|n| n.to_string()),
        (0u64..=1024).prop_map(|n| (i64::MAX as u64 - n).to_string()),
        (0u64..=1024).prop_map(|n| (i64::MAX as u64 + 1 + n).to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{19,30}",
    ];
    (random, any::<bool>(), offset_value).prop_map(move |(mut query, add, value)| {
        if let (Some(name), true) = (offset, add) {
            query.push((name.to_owned(), value));
        }
        query
    })
}

#[test]
fn random_list_queries_never_5xx_and_every_400_names_the_parameter() {
    let f = fixture();
    // Each listing and the parameter it reads as an offset, if any.
    let lists = [
        ("/data/foundation/catalog/dataSets", Some("start")),
        ("/data/foundation/catalog/batches", Some("start")),
        ("/data/foundation/schemaregistry/tenant/schemas", Some("start")),
        ("/data/foundation/schemaregistry/tenant/descriptors", None),
        ("/data/core/ups/config/mergePolicies", Some("start")),
        ("/data/core/ups/export/jobs", Some("offset")),
        ("/data/core/ups/segment/definitions", Some("start")),
        ("/data/core/ups/segment/jobs", Some("start")),
        ("/data/core/ups/access/entities", None),
    ];
    for (path, offset) in lists {
        let mut runner = TestRunner::new(config());
        let result = runner.run(&list_query(offset), |query| {
            let (status, answer) = f.runtime.block_on(async {
                let response = f.caller.request(Method::GET, path).query(&query).send().await.unwrap();
                into_parts(response).await
            });
            let label = format!("GET {path} with {query:?}");
            check_answer(&label, path, status, &answer)?;
            // An offset past the largest is refused, never read as some other page.
            let last = offset.and_then(|name| query.iter().rev().find(|(k, _)| k == name));
            if let Some((_, value)) = last {
                let digits = value.trim();
                let past = !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && digits.parse::<u64>().map_or(true, |n| n > i64::MAX as u64);
                prop_assert!(!past || status == 400, "{label} answered {status}: {answer}");
            }
            Ok(())
        });
        if let Err(failure) = result {
            panic!("GET {path}: {failure}");
        }
    }
}
