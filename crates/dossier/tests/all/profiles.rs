//! Profiles as merge policies build them (semantics.md), checked through profile access
//! (`GET /data/core/ups/access/entities`) over data ingested through the real ingestion API.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const ENTITIES: &str = "/data/core/ups/access/entities?schema.name=_xdm.context.profile";

fn crm_properties() -> Value {
    json!({
        "crm": {"type": "object", "properties": {
            "tier": {"type": "string"},
            "score": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}}
        }}
    })
}

fn record(crm_id: &str, email: Option<&str>, crm: Value) -> Value {
    let mut identity_map = json!({"CRMID": [{"id": crm_id, "primary": true}]});
    if let Some(email) = email {
        identity_map["Email"] = json!([{"id": email}]);
    }
    json!({"_id": format!("{crm_id}-{}", crm.to_string().len()), "identityMap": identity_map, "crm": crm})
}

async fn policy(caller: &Caller, graph: &str, merge: Value) -> String {
    let body = json!({"name": format!("{graph} policy"), "schema": {"name": "_xdm.context.profile"}, "identityGraph": {"type": graph}, "attributeMerge": merge});
    let (status, created) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &body)
        .await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn entity(caller: &Caller, ns: &str, id: &str, policy: Option<&str>) -> (u16, Value) {
    let mut path = format!("{ENTITIES}&entityIdNS={ns}&entityId={id}");
    if let Some(policy) = policy {
        path.push_str(&format!("&mergePolicyId={policy}"));
    }
    let (status, body) = caller.get(&path).await;
    if status != 200 {
        return (status, body);
    }
    let (_, profile) = body.as_object().unwrap().iter().next().unwrap();
    (status, profile.clone())
}

#[tokio::test]
async fn timestamp_ordered_takes_each_leaf_from_the_latest_fragment_that_has_it() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller.create_ingest_dataset("CRM", "profile", crm_properties()).await;

    caller
        .ingest_json_lines(
            &crm,
            &[record(
                "c1",
                None,
                json!({"tier": "silver", "score": 10, "tags": ["a", "b"]}),
            )],
        )
        .await;
    // Later: tier changes, score is explicitly null (never wins), tags replaced (not concatenated).
    let second = caller
        .ingest_json_lines(
            &crm,
            &[record(
                "c1",
                None,
                json!({"tier": "gold", "score": null, "tags": ["c"]}),
            )],
        )
        .await;

    let (status, profile) = entity(&caller, "CRMID", "c1", None).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(
        profile["entity"]["crm"],
        json!({"tier": "gold", "score": 10, "tags": ["c"]})
    );
    assert_eq!(profile["entityId"], "CRMID:c1");
    assert_eq!(profile["mergePolicy"]["id"], "timestampOrdered-none-mp");
    let completed = second["completed"].as_i64().unwrap();
    let expected = jiff::Timestamp::from_millisecond(completed).unwrap().to_string();
    assert_eq!(profile["lastModifiedAt"], expected);
    assert_eq!(profile["sources"], json!([crm]));
    assert_eq!(profile["entity"]["identityMap"]["CRMID"][0]["id"], "c1");
}

#[tokio::test]
async fn within_one_batch_the_later_row_wins() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller.create_ingest_dataset("CRM", "profile", crm_properties()).await;
    caller
        .ingest_json_lines(
            &crm,
            &[
                record("c1", None, json!({"tier": "first", "score": 1})),
                record("c1", None, json!({"tier": "second"})),
            ],
        )
        .await;
    let (_, profile) = entity(&caller, "CRMID", "c1", None).await;
    assert_eq!(profile["entity"]["crm"], json!({"tier": "second", "score": 1}));
}

#[tokio::test]
async fn pdg_stitches_through_shared_identities_and_none_does_not() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller.create_ingest_dataset("CRM", "profile", crm_properties()).await;
    let loyalty = caller
        .create_ingest_dataset(
            "Loyalty",
            "profile",
            json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}}}),
        )
        .await;
    caller
        .ingest_json_lines(&crm, &[record("c1", Some("ana@example.com"), json!({"tier": "gold"}))])
        .await;
    caller
        .ingest_json_lines(
            &loyalty,
            &[json!({"_id": "l1", "identityMap": {"LoyaltyID": [{"id": "L-1", "primary": true}], "Email": [{"id": "ana@example.com"}]}, "loyalty": {"points": 70}})],
        )
        .await;
    let pdg = policy(&caller, "pdg", json!({"type": "timestampOrdered"})).await;

    let (status, stitched) = entity(&caller, "LoyaltyID", "L-1", Some(&pdg)).await;
    assert_eq!(status, 200, "{stitched}");
    assert_eq!(stitched["entity"]["crm"]["tier"], "gold");
    assert_eq!(stitched["entity"]["loyalty"]["points"], 70);
    let identity_map = &stitched["entity"]["identityMap"];
    for ns in ["CRMID", "Email", "LoyaltyID"] {
        assert!(identity_map.get(ns).is_some(), "{identity_map}");
    }
    assert_eq!(
        identity_map["Email"].as_array().unwrap().len(),
        1,
        "deduplicated by namespace and id"
    );
    let (_, by_email) = entity(&caller, "Email", "ana@example.com", Some(&pdg)).await;
    assert_eq!(by_email["entityId"], stitched["entityId"]);

    // Under `none`, the loyalty record is its own profile.
    let (_, alone) = entity(&caller, "LoyaltyID", "L-1", None).await;
    assert_eq!(alone["entity"]["loyalty"]["points"], 70);
    assert!(alone["entity"].get("crm").is_none(), "{alone}");
    let (status, _) = entity(&caller, "Email", "ana@example.com", None).await;
    assert_eq!(status, 404, "no fragment has the email as its primary identity");
}

#[tokio::test]
async fn dataset_precedence_ranks_datasets_and_ignores_unlisted_ones() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let first = caller
        .create_ingest_dataset("Trusted", "profile", crm_properties())
        .await;
    let second = caller.create_ingest_dataset("Other", "profile", crm_properties()).await;
    let unlisted = caller
        .create_ingest_dataset("Unlisted", "profile", crm_properties())
        .await;
    caller
        .ingest_json_lines(&first, &[record("c1", None, json!({"tier": "trusted"}))])
        .await;
    caller
        .ingest_json_lines(&second, &[record("c1", None, json!({"tier": "newer", "score": 5}))])
        .await;
    let last = caller
        .ingest_json_lines(
            &unlisted,
            &[record("c1", Some("x@example.com"), json!({"tags": ["unlisted"]}))],
        )
        .await;
    caller
        .ingest_json_lines(&unlisted, &[record("c2", None, json!({"tier": "only unlisted"}))])
        .await;

    let ranked = policy(
        &caller,
        "none",
        json!({"type": "dataSetPrecedence", "order": [first, second]}),
    )
    .await;
    let (status, profile) = entity(&caller, "CRMID", "c1", Some(&ranked)).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(
        profile["entity"]["crm"],
        json!({"tier": "trusted", "score": 5}),
        "rank beats recency; gaps filled from lower ranks"
    );
    assert!(
        profile["entity"]["identityMap"].get("Email").is_none(),
        "unlisted datasets add no identities"
    );
    let last_modified: jiff::Timestamp = profile["lastModifiedAt"].as_str().unwrap().parse().unwrap();
    assert!(
        last_modified.as_millisecond() < last["completed"].as_i64().unwrap(),
        "unlisted datasets add no update time"
    );
    assert_eq!(
        entity(&caller, "CRMID", "c2", Some(&ranked)).await.0,
        404,
        "a profile made only of unlisted fragments does not exist"
    );

    let (_, timestamp) = entity(&caller, "CRMID", "c1", None).await;
    assert_eq!(timestamp["entity"]["crm"]["tier"], "newer");
    assert_eq!(timestamp["entity"]["crm"]["tags"], json!(["unlisted"]));
}

#[tokio::test]
async fn segment_membership_keeps_the_latest_qualification_per_segment() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller.create_ingest_dataset("CRM", "profile", crm_properties()).await;
    let with_memberships = |memberships: Value| {
        let mut r = record("c1", None, json!({}));
        r["segmentMembership"] = memberships;
        r
    };
    caller
        .ingest_json_lines(
            &crm,
            &[with_memberships(json!({"AAM": {
                "seg-1": {"status": "realized", "lastQualificationTime": "2019-09-01T12:00:00Z"},
                "seg-2": {"status": "realized", "lastQualificationTime": "2019-09-05T00:00:00Z"}}}))],
        )
        .await;
    caller
        .ingest_json_lines(
            &crm,
            &[with_memberships(json!({"AAM": {
                "seg-1": {"status": "exited", "lastQualificationTime": "2019-09-03T00:00:00Z"},
                "seg-2": {"status": "exited", "lastQualificationTime": "2019-09-02T00:00:00Z"}},
              "ups": {"seg-3": {"status": "existing", "lastQualificationTime": "2019-09-01T00:00:00Z"}}}))],
        )
        .await;
    let (_, profile) = entity(&caller, "CRMID", "c1", None).await;
    let memberships = &profile["entity"]["segmentMembership"];
    assert_eq!(memberships["AAM"]["seg-1"]["status"], "exited", "{memberships}");
    assert_eq!(
        memberships["AAM"]["seg-2"]["status"], "realized",
        "an older qualification never wins, even ingested later"
    );
    assert_eq!(memberships["ups"]["seg-3"]["status"], "existing");
}

#[tokio::test]
async fn profile_access_errors() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let (status, body) = caller
        .get("/data/core/ups/access/entities?schema.name=_xdm.context.profile&entityIdNS=Email")
        .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"]["400"][0]["message"]
            .as_str()
            .unwrap()
            .contains("entityId")
    );
    let (status, body) = caller
        .get("/data/core/ups/access/entities?schema.name=other&entityId=x&entityIdNS=Email")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = caller
        .get(&format!("{ENTITIES}&entityId=x&entityIdNS=Email&mergePolicyId=nope"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"]["400"][0]["message"]
            .as_str()
            .unwrap()
            .contains("mergePolicyId")
    );
    let (status, body) = caller
        .get(&format!("{ENTITIES}&entityId=nobody&entityIdNS=Email"))
        .await;
    assert_eq!(status, 404, "{body}");
}
