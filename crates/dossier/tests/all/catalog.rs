//! Catalog datasets and batches over HTTP (api.md section 5), including tenancy and restarts.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const DATASETS: &str = "/data/foundation/catalog/dataSets";
const BATCHES: &str = "/data/foundation/catalog/batches";

#[tokio::test]
async fn the_tutorials_dataset_body_works_verbatim() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let body: Value = serde_json::from_str(TUTORIAL_DATASET).unwrap();

    let response = caller.request(Method::POST, DATASETS).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = dataset_id_of(&created);
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(location, format!("{DATASETS}/{id}"));

    let (status, fetched) = caller.get(&format!("{DATASETS}/{id}")).await;
    assert_eq!(status, 200);
    let dataset = &fetched[&id];
    assert_eq!(dataset["name"], "Profile Data Export");
    assert_eq!(dataset["imsOrg"], ORG);
    assert_eq!(dataset["sandboxName"], "prod");
    assert_eq!(dataset["schemaRef"], body["schemaRef"]);
    assert_eq!(dataset["fileDescription"], body["fileDescription"]);
    assert_eq!(dataset["aspect"], "production");
    assert_eq!(dataset["classification"], json!({"dataBehavior": "record"}));
    assert_eq!(dataset["files"], format!("@/dataSetFiles?dataSetId={id}"));
    assert_eq!(dataset["tags"], json!({}));
    assert!(dataset["created"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(dataset["created"], dataset["updated"]);
    for key in ["description", "lastBatchId", "lastBatchStatus"] {
        assert!(dataset.get(key).is_some(), "missing {key}");
    }
}

#[tokio::test]
async fn dataset_validation_errors_name_the_field_and_value() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let tutorial: Value = serde_json::from_str(TUTORIAL_DATASET).unwrap();

    let mut no_name = tutorial.clone();
    no_name.as_object_mut().unwrap().remove("name");
    let (status, body) = caller.send_json(Method::POST, DATASETS, &no_name).await;
    assert_eq!(status, 400);
    assert_eq!(body["title"], "BadRequestError");
    assert_eq!(body["status"], 400);
    assert!(body["detail"].as_str().unwrap().contains("'name'"), "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("https://ns.adobe.com/aep/errors/")
    );

    let mut unknown_schema = tutorial.clone();
    unknown_schema["schemaRef"]["id"] = json!("https://ns.adobe.com/acme/schemas/nope");
    let (status, body) = caller.send_json(Method::POST, DATASETS, &unknown_schema).await;
    assert_eq!(status, 400);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("schemaRef.id") && detail.contains("https://ns.adobe.com/acme/schemas/nope"),
        "{detail}"
    );

    let mut csv = tutorial.clone();
    csv["fileDescription"]["format"] = json!("csv");
    let (status, body) = caller.send_json(Method::POST, DATASETS, &csv).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("fileDescription.format"));

    let (status, body) = into_parts(
        caller
            .request(Method::POST, DATASETS)
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"), "{body}");

    let (status, body) = into_parts(
        caller
            .request(Method::POST, DATASETS)
            .body(TUTORIAL_DATASET)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Content-Type: application/json"),
        "{body}"
    );

    // Nothing was created by any of these.
    assert_eq!(caller.get(DATASETS).await, (200, json!({})));
}

#[tokio::test]
async fn listing_pages_orders_filters_and_projects() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let mut ids = Vec::new();
    for name in ["charlie", "alpha", "bravo"] {
        ids.push(caller.create_dataset(name).await);
    }

    let (status, all) = caller.get(DATASETS).await;
    assert_eq!(status, 200);
    let listed: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(
        listed,
        ids.iter().collect::<Vec<_>>(),
        "default order is creation, oldest first"
    );

    let (_, page) = caller.get(&format!("{DATASETS}?limit=1&start=1")).await;
    assert_eq!(page.as_object().unwrap().keys().collect::<Vec<_>>(), vec![&ids[1]]);

    let (_, by_name) = caller.get(&format!("{DATASETS}?orderBy=desc:name")).await;
    let names: Vec<&str> = by_name
        .as_object()
        .unwrap()
        .values()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["charlie", "bravo", "alpha"]);

    let (_, filtered) = caller
        .get(&format!("{DATASETS}?name=bravo&properties=name,created"))
        .await;
    let only = filtered.as_object().unwrap();
    assert_eq!(only.len(), 1);
    let (_, dataset) = only.iter().next().unwrap();
    let keys: Vec<&String> = dataset.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "created"]);

    let (_, clamped) = caller
        .get(&format!("{DATASETS}?limit=1000&requestDataSource=False"))
        .await;
    assert_eq!(
        clamped.as_object().unwrap().len(),
        3,
        "limit above 100 is lowered, unknown parameters ignored"
    );

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("start=x", "start"),
        ("orderBy=desc:size", "orderBy"),
    ] {
        let (status, body) = caller.get(&format!("{DATASETS}?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["detail"].as_str().unwrap().contains(&format!("'{field}'")),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn patch_changes_name_description_tags_only() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let id = caller.create_dataset("before").await;
    let path = format!("{DATASETS}/{id}");

    let patch =
        json!({"name": "after", "description": "exports for activation", "tags": {"unifiedProfile": ["enabled:true"]}});
    let (status, body) = caller.send_json(Method::PATCH, &path, &patch).await;
    assert_eq!((status, body), (200, json!([format!("@/dataSets/{id}")])));
    let (_, fetched) = caller.get(&path).await;
    assert_eq!(fetched[&id]["name"], "after");
    assert_eq!(fetched[&id]["description"], "exports for activation");
    assert_eq!(fetched[&id]["tags"], json!({"unifiedProfile": ["enabled:true"]}));
    assert!(fetched[&id]["updated"].as_i64() >= fetched[&id]["created"].as_i64());

    let (status, body) = caller
        .send_json(Method::PATCH, &path, &json!({"schemaRef": {"id": "x"}}))
        .await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("schemaRef"));
    let (status, _) = caller
        .send_json(
            Method::PATCH,
            &format!("{DATASETS}/000000000000000000000000"),
            &json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn delete_removes_the_dataset_and_its_batches() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let id = caller.create_ingest_dataset("doomed", "profile", json!({})).await;
    let batch = caller.create_batch(&id).await;

    let (status, body) = caller.delete(&format!("{DATASETS}/{id}")).await;
    assert_eq!((status, body), (200, json!([format!("@/dataSets/{id}")])));
    let (status, body) = caller.get(&format!("{DATASETS}/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(body["title"], "NotFoundError");
    assert!(body["detail"].as_str().unwrap().starts_with("DataSet not found"));
    assert_eq!(caller.get(&format!("{BATCHES}/{batch}")).await.0, 404);
    assert_eq!(caller.delete(&format!("{DATASETS}/{id}")).await.0, 404);
}

#[tokio::test]
async fn batches_are_listed_and_fetched_as_aep_shapes_them() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let first = caller.create_ingest_dataset("one", "profile", json!({})).await;
    let second = caller.create_ingest_dataset("two", "profile", json!({})).await;
    let b1 = caller.create_batch(&first).await;
    let b2 = caller.create_batch(&second).await;
    assert_eq!(b1.len(), 32);

    let (status, fetched) = caller.get(&format!("{BATCHES}/{b1}")).await;
    assert_eq!(status, 200);
    let batch = &fetched[&b1];
    assert_eq!(batch["status"], "loading");
    assert_eq!(batch["relatedObjects"], json!([{"type": "dataSet", "id": first}]));
    assert_eq!(
        batch["inputFormat"],
        json!({"format": "json", "isMultiLineJson": false})
    );
    assert_eq!(batch["imsOrg"], ORG);
    assert!(batch["created"].is_i64());

    let (_, only_second) = caller.get(&format!("{BATCHES}?dataSet={second}")).await;
    assert_eq!(only_second.as_object().unwrap().keys().collect::<Vec<_>>(), vec![&b2]);
    let (_, loading) = caller
        .get(&format!("{BATCHES}?status=loading&orderBy=desc:created"))
        .await;
    assert_eq!(loading.as_object().unwrap().keys().collect::<Vec<_>>(), vec![&b2, &b1]);
    let (_, success) = caller.get(&format!("{BATCHES}?status=success")).await;
    assert_eq!(success, json!({}));
    let (status, body) = caller.get(&format!("{BATCHES}?status=done")).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("'status'"));

    let (_, dataset) = caller.get(&format!("{DATASETS}/{first}")).await;
    assert_eq!(dataset[&first]["lastBatchId"], b1);
    assert_eq!(dataset[&first]["lastBatchStatus"], "loading");

    let (status, body) = caller
        .send_json(
            Method::POST,
            "/data/foundation/import/batches",
            &json!({"datasetId": "000000000000000000000000", "inputFormat": {"format": "json"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("datasetId"));
}

#[tokio::test]
async fn ids_from_another_sandbox_answer_404_as_if_they_never_existed() {
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let prod = server.caller(ORG, "prod").await;
    let dev = prod.in_sandbox("dev");
    let dataset = dev.create_ingest_dataset("dev only", "profile", json!({})).await;
    let batch = dev.create_batch(&dataset).await;

    let (never_status, never_body) = prod.get(&format!("{DATASETS}/ffffffffffffffffffffffff")).await;
    let (status, body) = prod.get(&format!("{DATASETS}/{dataset}")).await;
    assert_eq!((status, never_status), (404, 404));
    assert_eq!(body["title"], never_body["title"]);
    assert_eq!(prod.get(&format!("{BATCHES}/{batch}")).await.0, 404);
    assert_eq!(
        prod.send_json(
            Method::PATCH,
            &format!("{DATASETS}/{dataset}"),
            &json!({"name": "stolen"})
        )
        .await
        .0,
        404
    );
    assert_eq!(prod.delete(&format!("{DATASETS}/{dataset}")).await.0, 404);
    assert_eq!(prod.get(DATASETS).await, (200, json!({})));
    assert_eq!(
        prod.get(&format!("{BATCHES}?dataSet={dataset}")).await,
        (200, json!({}))
    );
    let (status, _) = prod
        .send_json(
            Method::POST,
            "/data/foundation/import/batches",
            &json!({"datasetId": dataset, "inputFormat": {"format": "json"}}),
        )
        .await;
    assert_eq!(status, 400);

    // Still intact where it lives.
    let (_, listed) = dev.get(DATASETS).await;
    assert_eq!(listed[&dataset]["name"], "dev only");
}

#[tokio::test]
async fn trailing_slashes_reach_the_same_routes() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let body: Value = serde_json::from_str(TUTORIAL_DATASET).unwrap();
    let (status, created) = caller.send_json(Method::POST, &format!("{DATASETS}/"), &body).await;
    assert_eq!(status, 201);
    let id = dataset_id_of(&created);
    assert_eq!(caller.get(&format!("{DATASETS}/{id}/")).await.0, 200);
    assert_eq!(
        caller.get(&format!("{DATASETS}/")).await.1.as_object().unwrap().len(),
        1
    );
    assert_eq!(caller.get(&format!("{BATCHES}/")).await.0, 200);
}

#[tokio::test]
async fn a_restart_keeps_clients_sandboxes_datasets_and_tokens() {
    let mut server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let caller = server.caller(ORG, "dev").await;
    let dataset = caller.create_ingest_dataset("survives", "profile", json!({})).await;
    let batch = caller.create_batch(&dataset).await;

    server.restart().await;

    let caller = Caller {
        base: server.base.clone(),
        ..caller
    };
    let (status, fetched) = caller.get(&format!("{DATASETS}/{dataset}")).await;
    assert_eq!(status, 200, "the old token still works after a restart: {fetched}");
    assert_eq!(fetched[&dataset]["name"], "survives");
    assert_eq!(caller.get(&format!("{BATCHES}/{batch}")).await.0, 200);
    let fresh = server.token(&caller.credentials).await;
    assert!(!fresh.is_empty(), "the client's secret still works");
    let sandboxes = dossier(&server.data_dir(), &["sandboxes", "list", "--org", ORG, "--json"]);
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&sandboxes)
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["dev", "prod"]);
}
