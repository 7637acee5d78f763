//! Schema Registry over HTTP (api.md section 9): tenant schemas, union schemas, identity
//! descriptors, and how datasets use them (section 5).

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const SCHEMAS: &str = "/data/foundation/schemaregistry/tenant/schemas";
const DESCRIPTORS: &str = "/data/foundation/schemaregistry/tenant/descriptors";
const DATASETS: &str = "/data/foundation/catalog/dataSets";
const PROFILE_UNION_ALT_ID: &str = "_xdm.context.profile__union";
const PROFILE_UNION_ID: &str = "https://ns.adobe.com/xdm/context/profile__union";
const EVENT_UNION_ALT_ID: &str = "_xdm.context.experienceevent__union";

/// A `$id` as a path segment: `:` and `/` percent-encoded.
fn encoded(id: &str) -> String {
    id.replace(':', "%3A").replace('/', "%2F")
}

fn loyalty_schema() -> Value {
    json!({
        "title": "Loyalty Members",
        "description": "Profiles of loyalty program members",
        "type": "object",
        "meta:class": "https://ns.adobe.com/xdm/context/profile",
        "properties": {
            "personalEmail": {"type": "object", "properties": {"address": {"type": "string", "format": "email"}}},
            "loyalty": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "points": {"type": "integer"},
                    "joined": {"type": "string", "format": "date-time"}
                }
            }
        }
    })
}

fn web_events_schema() -> Value {
    json!({
        "title": "Web Events",
        "type": "object",
        "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/context/experienceevent"},
            {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-environment-details"},
            {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-web"}
        ]
    })
}

/// A profile schema whose `person.birthDate` is an integer, while the built-in class has a date.
fn clashing_schema() -> Value {
    json!({
        "title": "Legacy CRM",
        "meta:class": "https://ns.adobe.com/xdm/context/profile",
        "properties": {"person": {"type": "object", "properties": {"birthDate": {"type": "integer"}}}}
    })
}

async fn create_schema(caller: &Caller, body: &Value) -> Value {
    let (status, created) = caller.send_json(Method::POST, SCHEMAS, body).await;
    assert_eq!(status, 201, "{created}");
    created
}

fn dataset_body(schema_id: &str, enabled: bool) -> Value {
    let mut body = json!({
        "name": "Loyalty records",
        "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed-full+json;version=1"},
        "fileDescription": {"persisted": true, "containerFormat": "parquet", "format": "parquet"}
    });
    if enabled {
        body["tags"] = json!({"unifiedProfile": ["enabled:true"]});
    }
    body
}

async fn create_dataset_on(caller: &Caller, schema_id: &str, enabled: bool) -> String {
    let (status, created) = caller
        .send_json(Method::POST, DATASETS, &dataset_body(schema_id, enabled))
        .await;
    assert_eq!(status, 201, "{created}");
    dataset_id_of(&created)
}

async fn enable_for_profile(caller: &Caller, dataset: &str) -> (u16, Value) {
    let patch = json!({"tags": {"unifiedProfile": ["enabled:true"]}});
    caller
        .send_json(Method::PATCH, &format!("{DATASETS}/{dataset}"), &patch)
        .await
}

async fn profile_union(caller: &Caller) -> Value {
    let (status, union) = caller.get(&format!("{SCHEMAS}/{PROFILE_UNION_ALT_ID}")).await;
    assert_eq!(status, 200, "{union}");
    union
}

#[tokio::test]
async fn schemas_are_created_then_read_by_id_by_alt_id_and_listed() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;

    let profile = create_schema(&caller, &loyalty_schema()).await;
    let id = profile["$id"].as_str().unwrap().to_owned();
    let alt_id = profile["meta:altId"].as_str().unwrap().to_owned();
    let key = id
        .strip_prefix("https://ns.adobe.com/1bd6382559df0c130a49422d/schemas/")
        .expect("the $id carries the org's tenant name");
    assert_eq!(alt_id, format!("_1bd6382559df0c130a49422d.schemas.{key}"));
    assert_eq!(profile["meta:class"], "https://ns.adobe.com/xdm/context/profile");
    assert_eq!(profile["version"], "1.0");
    assert_eq!(profile["title"], "Loyalty Members");
    assert_eq!(profile["meta:containerId"], "tenant");
    assert_eq!(profile["meta:tenantNamespace"], "_1bd6382559df0c130a49422d");
    assert_eq!(profile["imsOrg"], ORG);
    assert_eq!(
        profile["properties"]["loyalty"]["properties"]["joined"],
        json!({"type": "string", "format": "date-time", "meta:xdmType": "date-time"})
    );
    // The class's own fields are part of every schema.
    assert_eq!(profile["properties"]["identityMap"]["meta:xdmType"], "map");
    assert_eq!(profile["properties"]["_id"]["type"], "string");

    for path in [format!("{SCHEMAS}/{}", encoded(&id)), format!("{SCHEMAS}/{alt_id}/")] {
        let (status, fetched) = caller.get(&path).await;
        assert_eq!(status, 200, "{path}: {fetched}");
        assert_eq!(fetched, profile, "{path}");
    }

    let events = create_schema(&caller, &web_events_schema()).await;
    assert_eq!(events["meta:class"], "https://ns.adobe.com/xdm/context/experienceevent");
    assert_eq!(
        events["meta:extends"],
        json!([
            "https://ns.adobe.com/xdm/context/experienceevent",
            "https://ns.adobe.com/xdm/context/experienceevent-environment-details",
            "https://ns.adobe.com/xdm/context/experienceevent-web"
        ])
    );
    assert_eq!(
        events["properties"]["environment"]["properties"]["browserDetails"]["properties"]["name"]["type"],
        "string"
    );

    let (status, listed) = caller.get(SCHEMAS).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["results"],
        json!([
            {"$id": id, "meta:altId": alt_id, "version": "1.0", "title": "Loyalty Members"},
            {"$id": events["$id"], "meta:altId": events["meta:altId"], "version": "1.0", "title": "Web Events"}
        ])
    );
    assert_eq!(listed["_page"], json!({"orderby": null, "next": null, "count": 2}));
    assert_eq!(listed["_links"], json!({"next": null}));

    let (status, page) = caller.get(&format!("{SCHEMAS}?limit=1&orderby=-title")).await;
    assert_eq!(status, 200);
    assert_eq!(page["results"][0]["title"], "Web Events");
    assert_eq!(page["_page"]["next"], "1");
    let next = page["_links"]["next"]["href"].as_str().unwrap();
    assert_eq!(next, format!("{SCHEMAS}?limit=1&start=1&orderby=-title"));
    let (_, last) = caller.get(next).await;
    assert_eq!(last["results"][0]["title"], "Loyalty Members");
    assert_eq!(last["_links"]["next"], Value::Null);

    let full = caller
        .request(Method::GET, SCHEMAS)
        .header("accept", "application/vnd.adobe.xed+json")
        .send()
        .await
        .unwrap();
    let full: Value = full.json().await.unwrap();
    assert_eq!(full["results"][0], profile);
}

#[tokio::test]
async fn bad_schemas_and_unknown_ids_are_named() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;

    let mut no_class = loyalty_schema();
    no_class.as_object_mut().unwrap().remove("meta:class");
    let mut bad_type = loyalty_schema();
    bad_type["properties"]["loyalty"]["properties"]["points"]["type"] = json!("decimal");
    for (body, field) in [
        (no_class, "'meta:class'"),
        (bad_type, "'properties.loyalty.properties.points.type'"),
        (clashing_schema_with_two_birth_dates(), "'person.birthDate'"),
    ] {
        let (status, error) = caller.send_json(Method::POST, SCHEMAS, &body).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["title"], "BadRequestError");
        assert_eq!(error["type"], "https://ns.adobe.com/aep/errors/XDM-SCHEMA-400");
        assert!(error["detail"].as_str().unwrap().contains(field), "{error}");
    }

    let (status, error) = caller.get(&format!("{SCHEMAS}/_acme.schemas.nope")).await;
    assert_eq!(status, 404);
    assert_eq!(error["title"], "NotFoundError");
    assert!(error["detail"].as_str().unwrap().contains("_acme.schemas.nope"));
    let (_, listed) = caller.get(SCHEMAS).await;
    assert_eq!(listed["results"], json!([]));
}

fn clashing_schema_with_two_birth_dates() -> Value {
    json!({
        "title": "Two birth dates",
        "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/context/profile"},
            {"$ref": "https://ns.adobe.com/xdm/context/profile-person-details"}
        ],
        "properties": {"person": {"type": "object", "properties": {"birthDate": {"type": "integer"}}}}
    })
}

#[tokio::test]
async fn the_union_has_the_builtin_class_and_grows_when_a_dataset_is_enabled() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;

    let union = profile_union(&caller).await;
    assert_eq!(union["$id"], PROFILE_UNION_ID);
    assert_eq!(union["meta:altId"], PROFILE_UNION_ALT_ID);
    assert_eq!(union["meta:class"], "https://ns.adobe.com/xdm/context/profile");
    assert_eq!(
        union["meta:extends"],
        json!(["https://ns.adobe.com/xdm/context/profile"])
    );
    // The tutorial's export fields.
    assert_eq!(
        union["properties"]["identities"]["items"]["properties"]["id"]["type"],
        "string"
    );
    assert_eq!(
        union["properties"]["personalEmail"]["properties"]["address"]["type"],
        "string"
    );
    assert!(union["properties"].get("loyalty").is_none());
    let (status, by_id) = caller.get(&format!("{SCHEMAS}/{}", encoded(PROFILE_UNION_ID))).await;
    assert_eq!((status, &by_id), (200, &union));

    let loyalty = create_schema(&caller, &loyalty_schema()).await;
    let loyalty_id = loyalty["$id"].as_str().unwrap();
    let dataset = create_dataset_on(&caller, loyalty_id, false).await;
    assert_eq!(
        profile_union(&caller).await,
        union,
        "a dataset not enabled changes nothing"
    );

    let (status, patched) = enable_for_profile(&caller, &dataset).await;
    assert_eq!(status, 200, "{patched}");
    let grown = profile_union(&caller).await;
    assert_eq!(
        grown["meta:extends"],
        json!(["https://ns.adobe.com/xdm/context/profile", loyalty_id])
    );
    assert_eq!(
        grown["properties"]["loyalty"]["properties"]["points"]["type"],
        "integer"
    );
    assert_eq!(grown["properties"]["person"], union["properties"]["person"]);

    let (status, events) = caller.get(&format!("{SCHEMAS}/{EVENT_UNION_ALT_ID}")).await;
    assert_eq!(status, 200);
    let browser = &events["properties"]["environment"]["properties"]["browserDetails"]["properties"];
    assert_eq!(browser["name"]["type"], "string");
    assert_eq!(browser["version"]["type"], "string");
    assert!(events["properties"].get("loyalty").is_none());
}

#[tokio::test]
async fn a_schema_conflicting_with_the_union_answers_409_when_its_dataset_is_enabled() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let clash = create_schema(&caller, &clashing_schema()).await;
    let clash_id = clash["$id"].as_str().unwrap();
    let union_before = profile_union(&caller).await;

    let (status, error) = caller
        .send_json(Method::POST, DATASETS, &dataset_body(clash_id, true))
        .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["title"], "ConflictError");
    assert_eq!(error["type"], "https://ns.adobe.com/aep/errors/CAT-UNION-409");
    let detail = error["detail"].as_str().unwrap();
    for part in ["'person.birthDate'", "as integer", "has it as date", clash_id] {
        assert!(detail.contains(part), "{part} missing in: {detail}");
    }
    assert_eq!(caller.get(DATASETS).await, (200, json!({})), "nothing was created");

    let dataset = create_dataset_on(&caller, clash_id, false).await;
    let (status, error) = enable_for_profile(&caller, &dataset).await;
    assert_eq!(status, 409, "{error}");
    assert!(error["detail"].as_str().unwrap().contains("'person.birthDate'"));
    let (_, fetched) = caller.get(&format!("{DATASETS}/{dataset}")).await;
    assert_eq!(fetched[&dataset]["tags"], json!({}), "the patch was not applied");
    assert_eq!(profile_union(&caller).await, union_before);

    // Other changes to the dataset still work.
    let (status, _) = caller
        .send_json(
            Method::PATCH,
            &format!("{DATASETS}/{dataset}"),
            &json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_schemas_class_decides_its_datasets_data_behavior() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let events = create_schema(&caller, &web_events_schema()).await;
    let profile = create_schema(&caller, &loyalty_schema()).await;

    // By meta:altId: the dataset keeps the schema's $id.
    let on_events = create_dataset_on(&caller, events["meta:altId"].as_str().unwrap(), true).await;
    let (_, fetched) = caller.get(&format!("{DATASETS}/{on_events}")).await;
    assert_eq!(
        fetched[&on_events]["classification"],
        json!({"dataBehavior": "time-series"})
    );
    assert_eq!(fetched[&on_events]["schemaRef"]["id"], events["$id"]);

    let on_profile = create_dataset_on(&caller, profile["$id"].as_str().unwrap(), false).await;
    let (_, fetched) = caller.get(&format!("{DATASETS}/{on_profile}")).await;
    assert_eq!(
        fetched[&on_profile]["classification"],
        json!({"dataBehavior": "record"})
    );

    // Enabled event schemas join the event union, not the profile union.
    let (_, event_union) = caller.get(&format!("{SCHEMAS}/{EVENT_UNION_ALT_ID}")).await;
    assert!(event_union["meta:extends"].as_array().unwrap().contains(&events["$id"]));
    assert!(
        !profile_union(&caller).await["meta:extends"]
            .as_array()
            .unwrap()
            .contains(&events["$id"])
    );
}

#[tokio::test]
async fn schemas_are_invisible_from_other_sandboxes_and_orgs() {
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let prod = server.caller(ORG, "prod").await;
    let dev = prod.in_sandbox("dev");
    let other_org = server.caller(OTHER_ORG, "prod").await;

    let schema = create_schema(&prod, &loyalty_schema()).await;
    let id = schema["$id"].as_str().unwrap();
    let alt_id = schema["meta:altId"].as_str().unwrap();
    for caller in [&dev, &other_org] {
        for path in [format!("{SCHEMAS}/{}", encoded(id)), format!("{SCHEMAS}/{alt_id}")] {
            let (status, error) = caller.get(&path).await;
            assert_eq!(status, 404, "{path}: {error}");
        }
        let (_, listed) = caller.get(SCHEMAS).await;
        assert_eq!(listed["results"], json!([]));
        let (status, error) = caller.send_json(Method::POST, DATASETS, &dataset_body(id, false)).await;
        assert_eq!(status, 400, "{error}");
        assert!(error["detail"].as_str().unwrap().contains("schemaRef.id"));
    }

    // Enabling in prod does not change dev's union.
    create_dataset_on(&prod, id, true).await;
    assert!(profile_union(&prod).await["properties"].get("loyalty").is_some());
    assert!(profile_union(&dev).await["properties"].get("loyalty").is_none());
}

#[tokio::test]
async fn identity_descriptors_are_reflected_in_the_schema_and_the_union() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let schema = create_schema(&caller, &loyalty_schema()).await;
    let schema_id = schema["$id"].as_str().unwrap();
    let email = json!({
        "@type": "xdm:descriptorIdentity",
        "xdm:sourceSchema": schema_id,
        "xdm:sourceVersion": 1,
        "xdm:sourceProperty": "/personalEmail/address",
        "xdm:namespace": "Email",
        "xdm:property": "xdm:code",
        "xdm:isPrimary": true
    });

    let (status, created) = caller.send_json(Method::POST, DESCRIPTORS, &email).await;
    assert_eq!(status, 201, "{created}");
    let descriptor_id = created["@id"].as_str().unwrap();
    assert_eq!(descriptor_id.len(), 40);
    assert_eq!(created["@type"], "xdm:descriptorIdentity");
    assert_eq!(created["xdm:sourceSchema"], schema_id);
    assert_eq!(created["xdm:sourceProperty"], "/personalEmail/address");
    assert_eq!(created["xdm:namespace"], "Email");
    assert_eq!(created["xdm:isPrimary"], true);

    let (status, fetched) = caller.get(&format!("{DESCRIPTORS}/{descriptor_id}")).await;
    assert_eq!((status, &fetched), (200, &created));
    let (_, listed) = caller.get(DESCRIPTORS).await;
    assert_eq!(listed, json!({"xdm:descriptorIdentity": [created]}));

    // The loyalty id as a second identity, naming the schema by its altId.
    let mut loyalty_id = email.clone();
    loyalty_id["xdm:sourceSchema"] = schema["meta:altId"].clone();
    loyalty_id["xdm:sourceProperty"] = json!("/loyalty/id");
    loyalty_id["xdm:namespace"] = json!("LoyaltyId");
    loyalty_id["xdm:isPrimary"] = json!(false);
    let (status, created) = caller.send_json(Method::POST, DESCRIPTORS, &loyalty_id).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["xdm:sourceSchema"], schema_id);

    let expected_identities = json!([
        {"xdm:sourceProperty": "/personalEmail/address", "xdm:namespace": "Email", "xdm:isPrimary": true},
        {"xdm:sourceProperty": "/loyalty/id", "xdm:namespace": "LoyaltyId", "xdm:isPrimary": false}
    ]);
    let (_, fetched) = caller.get(&format!("{SCHEMAS}/{}", encoded(schema_id))).await;
    assert_eq!(fetched["dossier:identities"], expected_identities);
    create_dataset_on(&caller, schema_id, true).await;
    assert_eq!(profile_union(&caller).await["dossier:identities"], expected_identities);

    let mut second_primary = loyalty_id.clone();
    second_primary["xdm:sourceProperty"] = json!("/_id");
    second_primary["xdm:isPrimary"] = json!(true);
    let mut not_a_string = loyalty_id.clone();
    not_a_string["xdm:sourceProperty"] = json!("/loyalty/points");
    let mut unknown_field = loyalty_id.clone();
    unknown_field["xdm:sourceProperty"] = json!("/loyalty/nope");
    let mut unknown_schema = loyalty_id.clone();
    unknown_schema["xdm:sourceSchema"] = json!("https://ns.adobe.com/acme/schemas/nope");
    let mut other_type = loyalty_id.clone();
    other_type["@type"] = json!("xdm:descriptorOneToOne");
    for (body, status, code, mentions) in [
        (
            loyalty_id.clone(),
            409,
            "XDM-DESCRIPTOR-409",
            "already an identity field",
        ),
        (
            second_primary,
            409,
            "XDM-DESCRIPTOR-409",
            "already has a primary identity",
        ),
        (not_a_string, 400, "XDM-DESCRIPTOR-400", "integer"),
        (unknown_field, 400, "XDM-DESCRIPTOR-400", "loyalty.nope"),
        (unknown_schema, 400, "XDM-DESCRIPTOR-400", "xdm:sourceSchema"),
        (other_type, 400, "XDM-DESCRIPTOR-400", "@type"),
    ] {
        let (got, error) = caller.send_json(Method::POST, DESCRIPTORS, &body).await;
        assert_eq!(got, status, "{body}: {error}");
        assert_eq!(error["type"], format!("https://ns.adobe.com/aep/errors/{code}"));
        assert!(error["detail"].as_str().unwrap().contains(mentions), "{error}");
    }

    let dev = {
        server.create_sandbox(ORG, "dev");
        caller.in_sandbox("dev")
    };
    let (status, _) = dev.get(&format!("{DESCRIPTORS}/{descriptor_id}")).await;
    assert_eq!(status, 404);
    let (status, _) = dev.send_json(Method::POST, DESCRIPTORS, &email).await;
    assert_eq!(status, 400, "the schema is not in dev");
}
