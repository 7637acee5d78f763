//! Segment definitions over HTTP (api.md section 8, `/data/core/ups/segment/definitions`):
//! create / get / list / PATCH / DELETE / bulk-get, every 400 (PQL refusals with their
//! position), names, inSegment dependencies, and tenancy.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const DEFINITIONS: &str = "/data/core/ups/segment/definitions";

fn definition_path(id: &str) -> String {
    format!("{DEFINITIONS}/{id}")
}

/// AEP's create example, with a condition on a field of the built-in profile class.
fn definition_body(name: &str, pql: &str) -> Value {
    json!({
        "name": name,
        "profileInstanceId": "ups",
        "description": "Last 30 days",
        "expression": {"type": "PQL", "format": "pql/text", "value": pql},
        "evaluationInfo": {"batch": {"enabled": true}, "continuous": {"enabled": false}, "synchronous": {"enabled": false}},
        "schema": {"name": "_xdm.context.profile"},
        "payloadSchema": "string"
    })
}

async fn create(caller: &Caller, body: &Value) -> Value {
    caller.create_at(DEFINITIONS, body).await
}

#[tokio::test]
async fn create_get_list_patch_and_delete() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;

    let created = create(
        &caller,
        &definition_body(
            "Ordered lately",
            "homeAddress.countryCode = \"US\" and xEvent[eventType = \"commerce.purchases\"].count() > 0",
        ),
    )
    .await;
    let id = id_of(&created);
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let creation_time = created["creationTime"].as_i64().unwrap();
    assert!(creation_time > 1_700_000_000_000, "milliseconds: {creation_time}");
    assert_eq!(created["updateTime"], creation_time);
    assert_eq!(created["updateEpoch"], creation_time / 1000);
    assert_eq!(
        created,
        json!({
            "id": id, "schema": {"name": "_xdm.context.profile"}, "profileInstanceId": "ups", "imsOrgId": ORG,
            "sandbox": {"sandboxId": "prod", "sandboxName": "prod", "type": "production", "default": true},
            "name": "Ordered lately", "description": "Last 30 days",
            "expression": {"type": "PQL", "format": "pql/text",
                           "value": "homeAddress.countryCode = \"US\" and xEvent[eventType = \"commerce.purchases\"].count() > 0"},
            "mergePolicyId": "timestampOrdered-none-mp",
            "evaluationInfo": {"batch": {"enabled": true}, "continuous": {"enabled": false}, "synchronous": {"enabled": false}},
            "dependents": [], "dependencies": [],
            "creationTime": creation_time, "updateEpoch": creation_time / 1000, "updateTime": creation_time
        })
    );
    assert_eq!(caller.get(&definition_path(&id)).await, (200, created.clone()));
    assert_eq!(caller.get(&format!("{}/", definition_path(&id))).await.0, 200);

    // AEP's PATCH example sends the whole object back with one change; server fields are ignored.
    let mut whole = created.clone();
    whole["expression"]["value"] = json!("homeAddress.countryCode = \"CA\"");
    whole["updateTime"] = json!(0);
    let (status, patched) = caller.send_json(Method::PATCH, &definition_path(&id), &whole).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["expression"]["value"], "homeAddress.countryCode = \"CA\"");
    assert_eq!(patched["creationTime"], creation_time);
    assert!(patched["updateTime"].as_i64().unwrap() > creation_time);

    let operations = json!([
        {"op": "replace", "path": "/name", "value": "Canadians"},
        {"op": "replace", "path": "/evaluationInfo/batch/enabled", "value": false},
        {"op": "remove", "path": "/description"},
        {"op": "add", "path": "/ttlInDays", "value": 30}
    ]);
    let (status, patched) = caller
        .send_json(Method::PATCH, &definition_path(&id), &operations)
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "Canadians");
    assert_eq!(patched["evaluationInfo"]["batch"]["enabled"], false);
    assert_eq!(
        (patched.get("description"), patched["ttlInDays"].clone()),
        (None, json!(30))
    );

    // aepp's updateSegment POSTs to the definition.
    let (status, posted) = caller
        .send_json(Method::POST, &definition_path(&id), &json!({"description": "by POST"}))
        .await;
    assert_eq!((status, posted["description"].clone()), (200, json!("by POST")));
    let unchanged = posted["updateTime"].clone();
    let (_, again) = caller
        .send_json(Method::PATCH, &definition_path(&id), &json!({"description": "by POST"}))
        .await;
    assert_eq!(
        again["updateTime"], unchanged,
        "a change to nothing keeps the update time"
    );

    let second = create(
        &caller,
        &definition_body("Second", "person.name.firstName.startsWith(\"Jo\")"),
    )
    .await;
    let (status, listed) = caller.get(&format!("{DEFINITIONS}?limit=1")).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["segments"][0]["id"], second["id"], "newest first by default");
    assert_eq!(
        listed["page"],
        json!({"totalCount": 2, "totalPages": 2, "sortField": "creationTime", "sort": "desc", "pageSize": 1, "limit": 1})
    );
    let next = listed["link"]["next"].as_str().unwrap();
    let (_, rest) = caller.get(next).await;
    assert_eq!(rest["segments"][0]["id"], json!(id));
    assert_eq!(rest["link"], json!({}));
    let (_, page_two) = caller.get(&format!("{DEFINITIONS}?limit=1&page=2")).await;
    assert_eq!(page_two["segments"][0]["id"], json!(id));
    let (_, batch_only) = caller
        .get(&format!("{DEFINITIONS}?evaluationInfo.batch.enabled=true"))
        .await;
    assert_eq!(batch_only["page"]["totalCount"], 1);
    let (_, streaming) = caller
        .get(&format!("{DEFINITIONS}?evaluationInfo.continuous.enabled=true"))
        .await;
    assert_eq!(
        (streaming["segments"].clone(), streaming["page"]["totalCount"].clone()),
        (json!([]), json!(0))
    );

    assert_eq!(caller.delete(&definition_path(&id)).await, (200, Value::Null));
    let (status, body) = caller.get(&definition_path(&id)).await;
    assert_eq!(ups_error(404, &body).0, "DOSSIER-SEGMENT-404", "{status}");
    let (status, body) = caller.delete(&definition_path(&id)).await;
    assert_eq!(
        (status, ups_error(404, &body).0),
        (404, "DOSSIER-SEGMENT-404".to_owned())
    );
}

#[tokio::test]
async fn pql_refusals_say_where_and_what() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    for (pql, message) in [
        (
            "homeAddress.city = \"x\" foo(1)",
            "Invalid PQL in expression.value at line 1, column 24: unexpected 'foo' after a complete condition",
        ),
        (
            "homeAddress.city = \"x\" and foo(1)",
            "Invalid PQL in expression.value at line 1, column 28: 'foo' is not supported; the functions of this subset",
        ),
        (
            "workAddress.country = \"US\"",
            "Invalid PQL in expression.value at line 1, column 1: there is no field 'workAddress' in the profile union schema",
        ),
        (
            "homeAddress.city = 3",
            "at line 1, column 20: 'homeAddress.city' is a string but this value is an integer",
        ),
        (
            "homeAddress.city = \"x\"\n  and chain(xEvent, timestamp, [A: WHAT(eventType = \"a\")])",
            "at line 2, column 7: 'chain' is not supported",
        ),
        (
            "select X from xEvent where X.web.webPageDetails.nope = \"x\"",
            "at line 1, column 49: there is no field 'nope' in 'web.webPageDetails' of the experience event union schema",
        ),
    ] {
        let (status, body) = caller
            .send_json(Method::POST, DEFINITIONS, &definition_body("refused", pql))
            .await;
        assert_eq!(status, 400, "{pql}: {body}");
        let (code, text) = ups_error(400, &body);
        assert_eq!(code, "DOSSIER-SEGMENT-PQL-400");
        assert!(text.contains(message), "{pql}: {text}");
    }
    let (_, listed) = caller.get(DEFINITIONS).await;
    assert_eq!(listed["page"]["totalCount"], 0, "nothing refused was stored");
}

#[tokio::test]
async fn fields_of_new_schemas_become_usable() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let pql = "loyalty.tier = \"gold\"";
    let (status, body) = caller
        .send_json(Method::POST, DEFINITIONS, &definition_body("Gold", pql))
        .await;
    assert_eq!(
        (status, ups_error(400, &body).0),
        (400, "DOSSIER-SEGMENT-PQL-400".to_owned())
    );
    caller
        .create_ingest_dataset(
            "crm",
            "profile",
            json!({"loyalty": {"type": "object", "properties": {"tier": {"type": "string"}}}}),
        )
        .await;
    create(&caller, &definition_body("Gold", pql)).await;
}

#[tokio::test]
async fn every_invalid_answeris_a_400_naming_the_field() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let valid = definition_body("valid", "homeAddress.countryCode = \"US\"");
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"expression": valid["expression"]}),
            "DOSSIER-SEGMENT-400",
            "Field 'name' is required",
        ),
        (
            json!({"name": "n"}),
            "DOSSIER-SEGMENT-400",
            "Field 'expression' is required",
        ),
        (
            json!({"name": "n", "expression": {"type": "PQL", "format": "pql/json", "value": "{}"}}),
            "DOSSIER-SEGMENT-400",
            "Field 'expression.format' has an invalid value 'pql/json'",
        ),
        (
            json!({"name": "n", "expression": {"type": "SQL", "value": "a"}}),
            "DOSSIER-SEGMENT-400",
            "Field 'expression.type'",
        ),
        (
            json!({"name": "n", "expression": {"value": "  "}}),
            "DOSSIER-SEGMENT-400",
            "Field 'expression.value'",
        ),
        (
            json!({"name": "n", "expression": valid["expression"], "schema": {"name": "_xdm.context.experienceevent"}}),
            "DOSSIER-SEGMENT-400",
            "Field 'schema.name'",
        ),
        (
            json!({"name": "n", "expression": valid["expression"], "evaluationInfo": {"continuous": {"enabled": true}}}),
            "DOSSIER-SEGMENT-400",
            "Field 'evaluationInfo.continuous.enabled' has an invalid value 'true': Dossier evaluates segment definitions in batch only",
        ),
        (
            json!({"name": "n", "expression": valid["expression"], "ttlInDays": -1}),
            "DOSSIER-SEGMENT-400",
            "Field 'ttlInDays'",
        ),
        (
            json!({"name": "n", "expression": valid["expression"], "mergePolicyId": "nope"}),
            "DOSSIER-SEGMENT-MERGEPOLICY-400",
            "Field 'mergePolicyId' has an invalid value 'nope': there is no merge policy 'nope' in sandbox 'prod'",
        ),
        (json!([1]), "DOSSIER-SEGMENT-400", "Field 'body'"),
    ];
    for (request, code, message) in cases {
        let (status, body) = caller.send_json(Method::POST, DEFINITIONS, &request).await;
        assert_eq!(status, 400, "{request}: {body}");
        let (got_code, text) = ups_error(400, &body);
        assert_eq!(got_code, code, "{request}");
        assert!(text.contains(message), "{request}: {text}");
    }

    let created = create(&caller, &valid).await;
    let path = definition_path(&id_of(&created));
    for (patch, code, message) in [
        (
            json!({"op": "remove", "path": "/name"}),
            "DOSSIER-SEGMENT-PATCH-400",
            "Field 'op'",
        ),
        (
            json!({"op": "replace", "path": "/id", "value": "x"}),
            "DOSSIER-SEGMENT-PATCH-400",
            "Field 'path'",
        ),
        (
            json!({"updateTime": 1}),
            "DOSSIER-SEGMENT-PATCH-400",
            "send at least one of name",
        ),
        (json!({"name": ""}), "DOSSIER-SEGMENT-400", "Field 'name'"),
        (
            json!({"expression": {"value": "homeAddress.countryCode ="}}),
            "DOSSIER-SEGMENT-PQL-400",
            "at line 1, column 26",
        ),
    ] {
        let (status, body) = caller.send_json(Method::PATCH, &path, &patch).await;
        assert_eq!(status, 400, "{patch}: {body}");
        let (got_code, text) = ups_error(400, &body);
        assert_eq!(got_code, code, "{patch}");
        assert!(text.contains(message), "{patch}: {text}");
    }
    assert_eq!(caller.get(&path).await.1, created, "refused patches change nothing");

    for (query, field) in [
        ("limit=0", "limit"),
        ("sort=size:desc", "sort"),
        ("start=1&page=2", "page"),
    ] {
        let (status, body) = caller.get(&format!("{DEFINITIONS}?{query}")).await;
        assert_eq!(status, 400, "{query}");
        let (code, text) = ups_error(400, &body);
        assert_eq!(code, "DOSSIER-SEGMENT-QUERY-400");
        assert!(text.contains(&format!("Field '{field}'")), "{query}: {text}");
    }
    let (status, body) = caller
        .send_json(Method::POST, &format!("{DEFINITIONS}/bulk-get"), &json!({"ids": "x"}))
        .await;
    assert_eq!(
        (status, ups_error(400, &body).0),
        (400, "DOSSIER-SEGMENT-BULK-400".to_owned())
    );
}

#[tokio::test]
async fn names_are_unique_and_in_segment_references_are_tracked() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let base = create(&caller, &definition_body("Base", "homeAddress.countryCode = \"US\"")).await;
    let base_id = id_of(&base);

    let (status, answer) = caller
        .send_json(
            Method::POST,
            DEFINITIONS,
            &definition_body("Base", "homeAddress.countryCode = \"CA\""),
        )
        .await;
    let (code, message) = ups_error(409, &answer);
    assert_eq!((status, code.as_str()), (409, "DOSSIER-SEGMENT-NAME-409"));
    assert!(message.contains(&base_id), "{message}");

    let derived = create(
        &caller,
        &definition_body(
            "Derived",
            &format!("inSegment(\"{base_id}\") and inSegment(\"aam-123\")"),
        ),
    )
    .await;
    let derived_id = id_of(&derived);
    assert_eq!(derived["dependencies"], json!([base_id, "aam-123"]));
    assert_eq!(
        caller.get(&definition_path(&base_id)).await.1["dependents"],
        json!([derived_id])
    );

    let closing = json!({"expression": {"value": format!("inSegment(\"{derived_id}\")")}});
    let (status, answer) = caller
        .send_json(Method::PATCH, &definition_path(&base_id), &closing)
        .await;
    let (code, message) = ups_error(400, &answer);
    assert_eq!((status, code.as_str()), (400, "DOSSIER-SEGMENT-CYCLE-400"));
    assert!(
        message.contains(&format!("{base_id} -> {derived_id} -> {base_id}")),
        "{message}"
    );

    let (status, answer) = caller.delete(&definition_path(&base_id)).await;
    let (code, message) = ups_error(409, &answer);
    assert_eq!((status, code.as_str()), (409, "DOSSIER-SEGMENT-DEPENDENTS-409"));
    assert!(message.contains(&derived_id), "{message}");
    assert_eq!(caller.delete(&definition_path(&derived_id)).await.0, 200);
    assert_eq!(caller.delete(&definition_path(&base_id)).await.0, 200);
}

#[tokio::test]
async fn bulk_get_answers_207_with_results_and_errors() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let first = create(&caller, &definition_body("First", "homeAddress.countryCode = \"US\"")).await;
    let second = create(&caller, &definition_body("Second", "homeAddress.countryCode = \"CA\"")).await;
    let request = json!({"ids": [{"id": id_of(&first)}, {"id": "missing"}, {"id": id_of(&second)}]});
    let (status, answer) = caller
        .send_json(Method::POST, &format!("{DEFINITIONS}/bulk-get"), &request)
        .await;
    assert_eq!(status, 207, "{answer}");
    assert_eq!(answer["results"][id_of(&first)], first);
    assert_eq!(answer["results"][id_of(&second)], second);
    assert_eq!(answer["errors"]["missing"]["status"], 404);
    assert_eq!(answer["errors"]["missing"]["code"], "DOSSIER-SEGMENT-404");
}

#[tokio::test]
async fn definitions_of_another_sandbox_or_org_are_404() {
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let prod = server.caller(ORG, "prod").await;
    let dev = prod.in_sandbox("dev");
    let other_org = server.caller(OTHER_ORG, "prod").await;
    let created = create(&prod, &definition_body("Prod only", "homeAddress.countryCode = \"US\"")).await;
    let path = definition_path(&id_of(&created));

    for caller in [&dev, &other_org] {
        let (status, body) = caller.get(&path).await;
        assert_eq!(
            (status, ups_error(404, &body).0),
            (404, "DOSSIER-SEGMENT-404".to_owned())
        );
        let (status, _) = caller
            .send_json(Method::PATCH, &path, &json!({"name": "taken over"}))
            .await;
        assert_eq!(status, 404);
        assert_eq!(caller.delete(&path).await.0, 404);
        let (_, listed) = caller.get(DEFINITIONS).await;
        assert_eq!(listed["page"]["totalCount"], 0);
        let (_, bulk) = caller
            .send_json(
                Method::POST,
                &format!("{DEFINITIONS}/bulk-get"),
                &json!({"ids": [id_of(&created)]}),
            )
            .await;
        assert_eq!(bulk["results"], json!({}));
        // The same name is free in another sandbox.
        create(
            caller,
            &definition_body("Prod only", "homeAddress.countryCode = \"US\""),
        )
        .await;
    }
    assert_eq!(prod.get(&path).await.1["name"], "Prod only");
}
