//! Merge policies over HTTP (api.md section 8, `/data/core/ups/config/mergePolicies`): the seeded
//! default, create / get / list / PUT / PATCH / DELETE, versions, the one default per schema,
//! validation, tenancy and bulk-get.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const POLICIES: &str = "/data/core/ups/config/mergePolicies";
const SEEDED: &str = "timestampOrdered-none-mp";

fn policy_path(id: &str) -> String {
    format!("{POLICIES}/{id}")
}

/// AEP's create example, ranking the given datasets.
fn loyalty_body(order: &[&str]) -> Value {
    json!({
        "name": "Loyalty members ordered by ID",
        "identityGraph": {"type": "none"},
        "attributeMerge": {"type": "dataSetPrecedence", "order": order},
        "schema": {"name": "_xdm.context.profile"},
        "default": false
    })
}

fn simple_body(name: &str) -> Value {
    json!({"name": name, "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}})
}

async fn create(caller: &Caller, body: &Value) -> Value {
    caller.create_at(POLICIES, body).await
}

#[tokio::test]
async fn every_sandbox_starts_with_the_seeded_default() {
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let prod = server.caller(ORG, "prod").await;

    let (status, seeded) = prod.get(&policy_path(SEEDED)).await;
    assert_eq!(status, 200, "{seeded}");
    let epoch = seeded["updateEpoch"].as_i64().unwrap();
    assert!(
        (1_700_000_000..10_000_000_000).contains(&epoch),
        "updateEpoch is in seconds: {epoch}"
    );
    assert_eq!(
        seeded,
        json!({
            "id": SEEDED, "name": "Default Timebased", "imsOrgId": ORG,
            "sandbox": {"sandboxId": "prod", "sandboxName": "prod", "type": "production", "default": true},
            "schema": {"name": "_xdm.context.profile"}, "version": 1,
            "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"},
            "isActiveOnEdge": false, "activeOnEdge": false, "default": true, "updateEpoch": epoch
        })
    );

    let dev = prod.in_sandbox("dev");
    let (status, seeded) = dev.get(&policy_path(SEEDED)).await;
    assert_eq!(status, 200);
    assert_eq!(seeded["default"], true);
    assert_eq!(
        seeded["sandbox"],
        json!({"sandboxId": "dev", "sandboxName": "dev", "type": "development", "default": false})
    );
    let (status, defaults) = dev.get(&format!("{POLICIES}?default=true")).await;
    assert_eq!(status, 200);
    assert_eq!(defaults["_page"], json!({"totalCount": 1, "pageSize": 1}));
    assert_eq!(defaults["children"][0]["id"], SEEDED);
    assert_eq!(defaults["_links"], json!({"next": {"href": ""}}));
}

#[tokio::test]
async fn create_get_replace_patch_and_delete_with_every_version_kept() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller.create_dataset("crm").await;
    let loyalty = caller.create_dataset("loyalty").await;

    let created = create(&caller, &loyalty_body(&[&crm, &loyalty])).await;
    let id = id_of(&created);
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(id, id.to_ascii_lowercase());
    assert_eq!(created["version"], 1);
    assert_eq!(created["imsOrgId"], ORG);
    assert_eq!(created["sandbox"]["sandboxName"], "prod");
    assert_eq!(
        created["attributeMerge"],
        json!({"type": "dataSetPrecedence", "order": [crm, loyalty]})
    );
    assert_eq!(
        (created["default"].clone(), created["isActiveOnEdge"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(caller.get(&policy_path(&id)).await, (200, created.clone()));

    // PUT replaces the whole definition; what a GET showed may be sent back as is.
    let mut replacement = created.clone();
    replacement["name"] = json!("Loyalty first");
    replacement["identityGraph"] = json!({"type": "pdg"});
    replacement["attributeMerge"]["order"] = json!([loyalty, crm]);
    let (status, replaced) = caller.send_json(Method::PUT, &policy_path(&id), &replacement).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["name"], "Loyalty first");
    assert_eq!(replaced["attributeMerge"]["order"], json!([loyalty, crm]));

    // PATCH as AEP's tutorial writes it (one operation, a dotted path) ...
    let (status, patched) = caller
        .send_json(
            Method::PATCH,
            &policy_path(&id),
            &json!({"op": "add", "path": "/identityGraph.type", "value": "none"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["version"].clone(), patched["identityGraph"].clone()),
        (json!(3), json!({"type": "none"}))
    );
    // ... and as a JSON Patch array (what aepp sends).
    let operations = json!([
        {"op": "replace", "path": "/name", "value": "Timestamp ordered now"},
        {"op": "replace", "path": "/attributeMerge/type", "value": "timestampOrdered"}
    ]);
    let (status, patched) = caller.send_json(Method::PATCH, &policy_path(&id), &operations).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["version"], 4);
    assert_eq!(patched["attributeMerge"], json!({"type": "timestampOrdered"}));

    // The same definition again is no change: the version stays.
    let (status, unchanged) = caller.send_json(Method::PATCH, &policy_path(&id), &operations).await;
    assert_eq!((status, unchanged["version"].clone()), (200, json!(4)));

    // Every version stays readable.
    assert_eq!(
        caller.get(&format!("{}?version=1", policy_path(&id))).await,
        (200, created.clone())
    );
    let (_, second) = caller.get(&format!("{}?version=2", policy_path(&id))).await;
    assert_eq!(second, replaced);
    assert_eq!(caller.get(&policy_path(&id)).await.1["version"], 4);
    let (status, body) = caller.get(&format!("{}?version=9", policy_path(&id))).await;
    let (code, message) = ups_error(404, &body);
    assert_eq!(status, 404);
    assert_eq!(code, "DOSSIER-MERGEPOLICY-VERSION-404");
    assert!(message.contains("1 to 4"), "{message}");

    let (status, body) = caller.delete(&policy_path(&id)).await;
    assert_eq!((status, body), (200, Value::Null), "AEP answers an empty 200");
    for path in [policy_path(&id), format!("{}?version=1", policy_path(&id))] {
        let (status, body) = caller.get(&path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(ups_error(404, &body).0, "UPLIB-101221-404");
    }
    assert_eq!(caller.delete(&policy_path(&id)).await.0, 404);
    assert_eq!(caller.get(POLICIES).await.1["_page"]["totalCount"], 1);
}

#[tokio::test]
async fn a_new_default_takes_over_from_the_previous_one() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let mut body = simple_body("Stitched");
    body["default"] = json!(true);
    let stitched = create(&caller, &body).await;
    let stitched_id = id_of(&stitched);
    assert_eq!(stitched["default"], true);

    let (_, seeded) = caller.get(&policy_path(SEEDED)).await;
    assert_eq!(
        (seeded["default"].clone(), seeded["version"].clone()),
        (json!(false), json!(2))
    );
    let (_, original) = caller.get(&format!("{}?version=1", policy_path(SEEDED))).await;
    assert_eq!(original["default"], true, "old versions stay as they were");
    let (_, defaults) = caller.get(&format!("{POLICIES}?default=true")).await;
    let ids: Vec<&str> = defaults["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [stitched_id.as_str()]);

    // Back again, with AEP's PATCH example verbatim ("true" as a string).
    let (status, seeded) = caller
        .send_json(
            Method::PATCH,
            &policy_path(SEEDED),
            &json!({"op": "add", "path": "/default", "value": "true"}),
        )
        .await;
    assert_eq!(status, 200, "{seeded}");
    assert_eq!(
        (seeded["default"].clone(), seeded["version"].clone()),
        (json!(true), json!(3))
    );
    let (_, stitched) = caller.get(&policy_path(&stitched_id)).await;
    assert_eq!(
        (stitched["default"].clone(), stitched["version"].clone()),
        (json!(false), json!(2))
    );
    let (_, non_defaults) = caller.get(&format!("{POLICIES}?default=false")).await;
    assert_eq!(non_defaults["children"][0]["id"], stitched_id);
}

#[tokio::test]
async fn the_default_cannot_be_deleted_or_left_without_a_successor() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;

    let (status, body) = caller.delete(&policy_path(SEEDED)).await;
    assert_eq!(status, 409);
    let (code, message) = ups_error(409, &body);
    assert_eq!(code, "DOSSIER-MERGEPOLICY-DELETE-DEFAULT-409");
    assert!(message.contains("Make another policy the default first"), "{message}");

    let clear = json!({"op": "replace", "path": "/default", "value": false});
    let (status, body) = caller.send_json(Method::PATCH, &policy_path(SEEDED), &clear).await;
    assert_eq!(status, 409);
    assert_eq!(ups_error(409, &body).0, "DOSSIER-MERGEPOLICY-DEFAULT-409");
    let (status, _) = caller
        .send_json(Method::PUT, &policy_path(SEEDED), &simple_body("no default flag"))
        .await;
    assert_eq!(status, 409, "a PUT without \"default\": true would clear it too");
    assert_eq!(
        caller.get(&policy_path(SEEDED)).await.1["version"],
        1,
        "nothing changed"
    );

    // Once another policy is the default, the old one can go.
    let mut body = simple_body("successor");
    body["default"] = json!(true);
    create(&caller, &body).await;
    assert_eq!(caller.delete(&policy_path(SEEDED)).await.0, 200);
    assert_eq!(caller.get(&policy_path(SEEDED)).await.0, 404);
}

#[tokio::test]
async fn one_policy_per_sandbox_is_active_on_edge() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let mut body = simple_body("edge");
    body["activeOnEdge"] = json!(true);
    let edge = create(&caller, &body).await;
    let edge_id = id_of(&edge);
    assert_eq!(
        (edge["isActiveOnEdge"].clone(), edge["activeOnEdge"].clone()),
        (json!(true), json!(true))
    );

    let mut second = simple_body("second edge");
    second["isActiveOnEdge"] = json!(true);
    let (status, body) = caller.send_json(Method::POST, POLICIES, &second).await;
    assert_eq!(status, 409);
    let (code, message) = ups_error(409, &body);
    assert_eq!(code, "DOSSIER-MERGEPOLICY-EDGE-409");
    assert!(message.contains(&edge_id), "{message}");

    let (status, body) = caller.delete(&policy_path(&edge_id)).await;
    assert_eq!(
        (status, ups_error(409, &body).0.as_str()),
        (409, "DOSSIER-MERGEPOLICY-DELETE-EDGE-409")
    );
    let off = json!([{"op": "replace", "path": "/isActiveOnEdge", "value": false}]);
    assert_eq!(
        caller.send_json(Method::PATCH, &policy_path(&edge_id), &off).await.0,
        200
    );
    assert_eq!(caller.delete(&policy_path(&edge_id)).await.0, 200);
    assert_eq!(caller.send_json(Method::POST, POLICIES, &second).await.0, 200);
}

#[tokio::test]
async fn dataset_precedence_names_the_unknown_dataset() {
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let caller = server.caller(ORG, "prod").await;
    let crm = caller.create_dataset("crm").await;
    let elsewhere = caller.in_sandbox("dev").create_dataset("dev only").await;

    for unknown in ["000000000000000000000000", elsewhere.as_str()] {
        let (status, body) = caller
            .send_json(Method::POST, POLICIES, &loyalty_body(&[&crm, unknown]))
            .await;
        assert_eq!(status, 400, "{body}");
        let (code, message) = ups_error(400, &body);
        assert_eq!(code, "DOSSIER-MERGEPOLICY-DATASET-400");
        assert!(
            message.contains("'attributeMerge.order'") && message.contains(unknown),
            "{message}"
        );
    }
    let created = create(&caller, &loyalty_body(&[&crm])).await;
    let add_unknown = json!({"op": "add", "path": "/attributeMerge/order", "value": [crm, elsewhere]});
    let (status, body) = caller
        .send_json(Method::PATCH, &policy_path(&id_of(&created)), &add_unknown)
        .await;
    assert_eq!(status, 400);
    assert!(ups_error(400, &body).1.contains(&elsewhere));
    assert_eq!(
        caller.get(POLICIES).await.1["_page"]["totalCount"],
        2,
        "nothing else was created"
    );
}

#[tokio::test]
async fn every_validation_error_names_the_field() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let valid = simple_body("valid");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = valid.clone();
        change(&mut body);
        body
    };
    let cases = [
        (with(&|b| drop(b.as_object_mut().unwrap().remove("name"))), "name"),
        (with(&|b| b["name"] = json!("")), "name"),
        (
            with(&|b| b["identityGraph"]["type"] = json!("cluster")),
            "identityGraph.type",
        ),
        (
            with(&|b| drop(b.as_object_mut().unwrap().remove("identityGraph"))),
            "identityGraph",
        ),
        (
            with(&|b| b["attributeMerge"] = json!({"type": "dataSetPrecedence"})),
            "attributeMerge.order",
        ),
        (
            with(&|b| b["attributeMerge"]["type"] = json!("newestWins")),
            "attributeMerge.type",
        ),
        (
            with(&|b| b["schema"] = json!({"name": "_xdm.context.experienceevent"})),
            "schema.name",
        ),
        (with(&|b| b["default"] = json!("yes")), "default"),
        (with(&|b| b["isActiveOnEdge"] = json!(3)), "isActiveOnEdge"),
        (json!(["not", "an", "object"]), "body"),
    ];
    for (body, field) in &cases {
        for (method, path) in [(Method::POST, POLICIES.to_owned()), (Method::PUT, policy_path(SEEDED))] {
            let (status, answer) = caller.send_json(method.clone(), &path, body).await;
            assert_eq!(status, 400, "{method} {body}: {answer}");
            let (code, message) = ups_error(400, &answer);
            assert_eq!(code, "DOSSIER-MERGEPOLICY-400");
            assert!(message.contains(&format!("'{field}'")), "{method} {body}: {message}");
        }
    }
    let (_, answer) = caller
        .send_json(
            Method::POST,
            POLICIES,
            &with(&|b| b["identityGraph"]["type"] = json!("cluster")),
        )
        .await;
    assert!(
        ups_error(400, &answer).1.contains("'cluster'"),
        "the value is named too: {answer}"
    );

    let patches = [
        (
            json!({"op": "remove", "path": "/name"}),
            "DOSSIER-MERGEPOLICY-PATCH-400",
            "op",
        ),
        (
            json!({"op": "replace", "path": "/version", "value": 7}),
            "DOSSIER-MERGEPOLICY-PATCH-400",
            "path",
        ),
        (
            json!({"op": "replace", "path": "/colour", "value": 7}),
            "DOSSIER-MERGEPOLICY-PATCH-400",
            "path",
        ),
        (
            json!([{"op": "replace", "path": "/name"}]),
            "DOSSIER-MERGEPOLICY-PATCH-400",
            "[0].value",
        ),
        (
            json!({"op": "replace", "path": "/identityGraph/type", "value": "cluster"}),
            "DOSSIER-MERGEPOLICY-400",
            "identityGraph.type",
        ),
        (
            json!({"op": "replace", "path": "/attributeMerge.type", "value": "dataSetPrecedence"}),
            "DOSSIER-MERGEPOLICY-400",
            "attributeMerge.order",
        ),
    ];
    for (patch, expected_code, field) in &patches {
        let (status, answer) = caller.send_json(Method::PATCH, &policy_path(SEEDED), patch).await;
        assert_eq!(status, 400, "{patch}: {answer}");
        let (code, message) = ups_error(400, &answer);
        assert_eq!(&code, expected_code, "{patch}");
        assert!(message.contains(&format!("'{field}'")), "{patch}: {message}");
    }

    for (query, field) in [
        ("limit=0", "limit"),
        ("start=x", "start"),
        ("orderBy=-size", "orderBy"),
        ("default=maybe", "default"),
        ("identityGraph.type=cluster", "identityGraph.type"),
    ] {
        let (status, answer) = caller.get(&format!("{POLICIES}?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            ups_error(400, &answer).1.contains(&format!("'{field}'")),
            "{query}: {answer}"
        );
    }
    let (status, answer) = caller.get(&format!("{}?version=0", policy_path(SEEDED))).await;
    assert_eq!(status, 400);
    assert!(ups_error(400, &answer).1.contains("'version'"));
    let (status, answer) = caller
        .send_json(Method::POST, &format!("{POLICIES}/bulk-get"), &json!({"ids": "x"}))
        .await;
    assert_eq!(status, 400);
    assert!(ups_error(400, &answer).1.contains("'ids'"));

    let (_, seeded) = caller.get(&policy_path(SEEDED)).await;
    assert_eq!(seeded["version"], 1, "no invalid request changed anything");
    assert_eq!(caller.get(POLICIES).await.1["_page"]["totalCount"], 1);
}

#[tokio::test]
async fn other_sandboxes_and_orgs_answer_404_as_if_the_policy_never_existed() {
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let prod = server.caller(ORG, "prod").await;
    let dev = prod.in_sandbox("dev");
    let stranger = server.caller(OTHER_ORG, "prod").await;
    let dev_policy = id_of(&create(&dev, &simple_body("dev only")).await);
    let never = "7a4c1f5e-0000-4000-8000-000000000000";

    let (never_status, never_body) = prod.get(&policy_path(never)).await;
    assert_eq!(never_status, 404);
    let never_code = ups_error(404, &never_body).0;
    for caller in [&prod, &stranger] {
        let (status, body) = caller.get(&policy_path(&dev_policy)).await;
        assert_eq!((status, ups_error(404, &body).0), (404, never_code.clone()));
        let path = policy_path(&dev_policy);
        assert_eq!(
            caller.send_json(Method::PUT, &path, &simple_body("stolen")).await.0,
            404
        );
        let rename = json!({"op": "replace", "path": "/name", "value": "stolen"});
        assert_eq!(caller.send_json(Method::PATCH, &path, &rename).await.0, 404);
        assert_eq!(caller.delete(&path).await.0, 404);
        let (_, listed) = caller.get(POLICIES).await;
        assert!(!listed.to_string().contains(&dev_policy), "{listed}");
        let (status, bulk) = caller
            .send_json(
                Method::POST,
                &format!("{POLICIES}/bulk-get"),
                &json!({"ids": [{"id": dev_policy}]}),
            )
            .await;
        assert_eq!((status, bulk["results"].clone()), (207, json!({})));
    }
    // The other org has its own seeded policy, in its own org.
    let (status, theirs) = stranger.get(&policy_path(SEEDED)).await;
    assert_eq!((status, theirs["imsOrgId"].clone()), (200, json!(OTHER_ORG)));

    // Still intact where it lives.
    let (status, mine) = dev.get(&policy_path(&dev_policy)).await;
    assert_eq!(
        (status, mine["name"].clone(), mine["version"].clone()),
        (200, json!("dev only"), json!(1))
    );
}

#[tokio::test]
async fn bulk_get_answers_207_with_results_and_errors() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let unknown = "42d4a596-b1c6-46c0-994e-ca5ef1f85130";
    let body = json!({"ids": [{"id": SEEDED}, {"id": unknown}]});
    let (status, answer) = caller
        .send_json(Method::POST, &format!("{POLICIES}/bulk-get"), &body)
        .await;
    assert_eq!(status, 207, "{answer}");
    let (_, seeded) = caller.get(&policy_path(SEEDED)).await;
    assert_eq!(answer["results"], json!({SEEDED: seeded}));
    let error = &answer["errors"][unknown];
    assert_eq!(
        (error["status"].clone(), error["code"].clone()),
        (json!(404), json!("UPLIB-101221-404"))
    );
    assert!(error["message"].as_str().unwrap().contains(unknown));
}

#[tokio::test]
async fn listing_pages_like_aep_and_orders_by_name() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    for name in ["charlie", "Alpha", "bravo"] {
        create(&caller, &simple_body(name)).await;
    }
    let names = |page: &Value| -> Vec<String> {
        page["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let (status, first) = caller.get(&format!("{POLICIES}?limit=2")).await;
    assert_eq!(status, 200);
    assert_eq!(first["_page"], json!({"totalCount": 4, "pageSize": 2}));
    assert_eq!(names(&first), ["Alpha", "bravo"], "by name, ignoring case, by default");
    let href = first["_links"]["next"]["href"].as_str().unwrap();
    assert_eq!(href, "@/mergePolicies?start=2&orderBy=name&limit=2");
    // Follow it as aepp does: keep what comes after '?'.
    let (_, second) = caller
        .get(&format!("{POLICIES}?{}", href.split_once('?').unwrap().1))
        .await;
    assert_eq!(names(&second), ["charlie", "Default Timebased"]);
    assert_eq!(second["_links"], json!({"next": {"href": ""}}));

    let (_, descending) = caller
        .get(&format!("{POLICIES}?orderBy=-name&requestDataSource=False"))
        .await;
    assert_eq!(names(&descending), ["Default Timebased", "charlie", "bravo", "Alpha"]);
    let (_, stitched) = caller.get(&format!("{POLICIES}?identityGraph.type=pdg&limit=1")).await;
    assert_eq!(stitched["_page"]["totalCount"], 3);
    assert_eq!(
        stitched["_links"]["next"]["href"],
        "@/mergePolicies?start=1&orderBy=name&limit=1&identityGraph.type=pdg"
    );
}

#[tokio::test]
async fn trailing_slashes_reach_the_same_routes() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let (status, created) = caller
        .send_json(Method::POST, &format!("{POLICIES}/"), &simple_body("slashed"))
        .await;
    assert_eq!(status, 200, "{created}");
    let id = id_of(&created);
    assert_eq!(caller.get(&format!("{}/", policy_path(&id))).await.0, 200);
    assert_eq!(caller.get(&format!("{POLICIES}/")).await.1["_page"]["totalCount"], 2);
    let (status, _) = caller
        .send_json(
            Method::POST,
            &format!("{POLICIES}/bulk-get/"),
            &json!({"ids": [{"id": id}]}),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(caller.delete(&format!("{}/", policy_path(&id))).await.0, 200);
}

#[tokio::test]
async fn the_openapi_document_lists_the_merge_policy_routes() {
    let server = TestServer::start().await;
    let document = server.openapi_document().await;
    let paths = &document["paths"];
    for (path, methods) in [
        (POLICIES.to_owned(), &["get", "post"][..]),
        (format!("{POLICIES}/{{id}}"), &["get", "put", "patch", "delete"][..]),
        (format!("{POLICIES}/bulk-get"), &["post"][..]),
    ] {
        for method in methods {
            assert!(
                paths[&path][*method].is_object(),
                "{method} {path} missing from /openapi.json"
            );
        }
    }
}
