//! Exports that build only the profiles they can select (docs/export-jobs.md, "Reading only what
//! a job selects"): a segment-filtered job keys the profiles the segment index and the evaluated
//! memberships name, an incremental job the profiles touched after `fromIngestTimestamp`; both
//! still merge every fragment of those profiles. The boundaries of the index: a membership held
//! by a fragment of another identity of the profile, files without a sidecar (ingested before
//! the index, or whose sidecar was lost or damaged), both merge policies' keyings, spilled or not.

use crate::support::*;
use arrow::array::{Array, AsArray, RecordBatch};
use dossier_engine::export::ExportSettings;
use dossier_model::export_job::{ExportSpec, MembershipStatus, SegmentFilter};
use reqwest::Method;
use serde_json::{Value, json};

const SEGMENT: &str = "1rfe8422-334d-12f4-3sd4-12cf6g990g51";

struct Setup {
    server: TestServer,
    caller: Caller,
    crm: String,
    loyalty: String,
    web: String,
    target: String,
    pdg: String,
}

async fn setup() -> Setup {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let ProfileAndEventDatasets { crm, loyalty, web } = profile_and_event_datasets(&caller).await;
    let target = caller.create_dataset("Profile Data Export").await;
    let body = json!({"name": "stitched", "schema": {"name": "_xdm.context.profile"},
                      "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}});
    let (_, policy) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &body)
        .await;
    Setup {
        server,
        caller,
        crm,
        loyalty,
        web,
        target,
        pdg: id_of(&policy),
    }
}

fn customer(crm: &str, email: &str, memberships: Value) -> Value {
    json!({"_id": crm, "identityMap": {"CRMID": [{"id": crm, "primary": true}], "Email": [{"id": email}]},
           "crm": {"tier": format!("tier-of-{crm}")}, "segmentMembership": memberships})
}

fn member(loyalty: &str, email: &str, memberships: Value) -> Value {
    json!({"_id": loyalty, "identityMap": {"LoyaltyID": [{"id": loyalty, "primary": true}], "Email": [{"id": email}]},
           "loyalty": {"points": 7}, "segmentMembership": memberships})
}

fn event(id: &str, crm: &str) -> Value {
    json!({"_id": id, "timestamp": "2024-01-01T00:00:00Z", "identityMap": {"CRMID": [{"id": crm, "primary": true}]}})
}

fn ups(status: &str) -> Value {
    json!({"ups": {SEGMENT: {"status": status, "lastQualificationTime": "2024-01-01T00:00:00Z"}}})
}

fn spec(s: &Setup, policy: &str) -> ExportSpec {
    export_spec(&s.target, policy)
}

fn in_segment(s: &Setup, policy: &str, statuses: &[MembershipStatus]) -> ExportSpec {
    ExportSpec {
        segments: vec![SegmentFilter {
            segment_id: SEGMENT.into(),
            segment_ns: "UPS".into(),
            statuses: statuses.to_vec(),
        }],
        ..spec(s, policy)
    }
}

const CURRENT: [MembershipStatus; 2] = [MembershipStatus::Realized, MembershipStatus::Existing];

/// One exported profile: its identities (`NS:id`, sorted), CRM tier and loyalty points.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Exported {
    identities: Vec<String>,
    tier: Option<String>,
    points: Option<i64>,
}

/// Exports with the default settings and with pass one spilled (one profile per shard, one
/// identity per bucket); both must give the same profiles, which are returned sorted.
async fn export(s: &Setup, spec: ExportSpec) -> Vec<Exported> {
    let spill = tempfile::tempdir().unwrap();
    let spilled = spilled_settings(spill.path());
    let rows = export_with(s, spec.clone(), &ExportSettings::default()).await;
    assert_eq!(export_with(s, spec, &spilled).await, rows, "spilled export");
    rows
}

async fn export_with(s: &Setup, spec: ExportSpec, settings: &ExportSettings) -> Vec<Exported> {
    let (outcome, rows) = run_export_in_process(&s.server, spec, settings).await;
    let mut exported: Vec<Exported> = rows.iter().flat_map(profiles_of).collect();
    assert_eq!(outcome.exported_profiles as usize, exported.len());
    exported.sort();
    exported
}

fn profiles_of(rows: &RecordBatch) -> Vec<Exported> {
    let map = rows.column_by_name("identityMap").unwrap().as_map();
    let leaf = |column: &str, leaf: &str| {
        rows.column_by_name(column)
            .map(|c| c.as_struct().column_by_name(leaf).unwrap().clone())
    };
    let (tiers, points) = (leaf("crm", "tier"), leaf("loyalty", "points"));
    (0..rows.num_rows())
        .map(|r| {
            let entries = map.value(r);
            let namespaces = entries.column(0).as_string::<i32>();
            let lists = entries.column(1).as_list::<i32>();
            let mut identities = Vec::new();
            for n in 0..entries.len() {
                let items = lists.value(n);
                let ids = items.as_struct().column_by_name("id").unwrap().as_string::<i32>();
                identities.extend(ids.iter().map(|id| format!("{}:{}", namespaces.value(n), id.unwrap())));
            }
            identities.sort();
            Exported {
                identities,
                tier: tiers
                    .as_ref()
                    .filter(|t| t.is_valid(r))
                    .map(|t| t.as_string::<i32>().value(r).to_owned()),
                points: points
                    .as_ref()
                    .filter(|p| p.is_valid(r))
                    .map(|p| p.as_primitive::<arrow::datatypes::Int64Type>().value(r)),
            }
        })
        .collect()
}

fn ids(exported: &[Exported]) -> Vec<Vec<String>> {
    exported.iter().map(|e| e.identities.clone()).collect()
}

/// The folder of the sandbox's segment index sidecars.
fn index_folder(s: &Setup) -> std::path::PathBuf {
    s.server
        .data_dir()
        .join("lake")
        .join(ORG)
        .join("prod")
        .join("_profile")
        .join("segment-index")
}

fn sidecars(s: &Setup) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![index_folder(s)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn a_membership_held_by_another_identity_s_fragment_selects_the_whole_profile() {
    let s = setup().await;
    s.caller
        .ingest_json_lines(
            &s.crm,
            &[
                customer("c1", "ana@example.com", json!({})),
                customer("c2", "bo@example.com", ups("realized")),
                customer("c3", "cy@example.com", ups("exited")),
            ],
        )
        .await;
    // c1's membership lives only on the loyalty record linked to it by email.
    s.caller
        .ingest_json_lines(&s.loyalty, &[member("L1", "ana@example.com", ups("existing"))])
        .await;

    let members = export(&s, in_segment(&s, &s.pdg, &CURRENT)).await;
    assert_eq!(
        members,
        [
            Exported {
                identities: vec!["CRMID:c1".into(), "Email:ana@example.com".into(), "LoyaltyID:L1".into()],
                tier: Some("tier-of-c1".into()),
                points: Some(7),
            },
            Exported {
                identities: vec!["CRMID:c2".into(), "Email:bo@example.com".into()],
                tier: Some("tier-of-c2".into()),
                points: None,
            },
        ],
        "c1 is merged from both its fragments, not only the one holding the entry"
    );
    let exited = export(&s, in_segment(&s, &s.pdg, &[MembershipStatus::Exited])).await;
    assert_eq!(ids(&exited), [["CRMID:c3", "Email:cy@example.com"]]);

    // Under `none` the loyalty record is a profile of its own: it is the member, c1 is not.
    let unstitched = export(&s, in_segment(&s, "timestampOrdered-none-mp", &CURRENT)).await;
    assert_eq!(
        ids(&unstitched),
        [
            vec!["CRMID:c2", "Email:bo@example.com"],
            vec!["Email:ana@example.com", "LoyaltyID:L1"]
        ]
    );
    assert!(!sidecars(&s).is_empty(), "the first segment job wrote the index");
}

#[tokio::test]
async fn files_without_a_sidecar_or_with_a_damaged_one_are_indexed_again() {
    let s = setup().await;
    s.caller
        .ingest_json_lines(&s.crm, &[customer("c1", "ana@example.com", ups("realized"))])
        .await;
    assert_eq!(
        ids(&export(&s, in_segment(&s, &s.pdg, &CURRENT)).await),
        [["CRMID:c1", "Email:ana@example.com"]]
    );
    let written = sidecars(&s);
    assert_eq!(written.len(), 1, "one sidecar per record file: {written:?}");

    // As if the first batch had been ingested before the index existed.
    std::fs::remove_dir_all(index_folder(&s)).unwrap();
    s.caller
        .ingest_json_lines(&s.crm, &[customer("c2", "bo@example.com", ups("existing"))])
        .await;
    let expected = [
        ["CRMID:c1", "Email:ana@example.com"],
        ["CRMID:c2", "Email:bo@example.com"],
    ];
    assert_eq!(ids(&export(&s, in_segment(&s, &s.pdg, &CURRENT)).await), expected);
    let rebuilt = sidecars(&s);
    assert_eq!(rebuilt.len(), 2, "{rebuilt:?}");

    // A sidecar that cannot be read is rebuilt from its file, never trusted.
    std::fs::write(&rebuilt[0], b"not parquet").unwrap();
    std::fs::write(&rebuilt[1], b"").unwrap();
    assert_eq!(ids(&export(&s, in_segment(&s, &s.pdg, &CURRENT)).await), expected);
}

#[tokio::test]
async fn evaluated_memberships_name_members_no_fragment_carries() {
    let s = setup().await;
    s.caller
        .ingest_json_lines(
            &s.crm,
            &[
                customer("c1", "ana@example.com", json!({})),
                customer("c2", "bo@example.com", json!({})),
            ],
        )
        .await;
    let (status, definition) = s
        .caller
        .send_json(
            Method::POST,
            "/data/core/ups/segment/definitions",
            &json!({"name": "c1 only", "expression": {"type": "PQL", "format": "pql/text", "value": "crm.tier = \"tier-of-c1\""}}),
        )
        .await;
    assert_eq!(status, 200, "{definition}");
    let segment = id_of(&definition);
    let (status, job) = s
        .caller
        .send_json(
            Method::POST,
            "/data/core/ups/segment/jobs",
            &json!([{"segmentId": segment}]),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    let path = format!("/data/core/ups/segment/jobs/{}", id_of(&job));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, job) = s.caller.get(&path).await;
        if job["status"] == "SUCCEEDED" {
            break;
        }
        assert!(
            job["status"] != "FAILED" && std::time::Instant::now() < deadline,
            "{job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let spec = ExportSpec {
        segments: vec![SegmentFilter {
            segment_id: segment,
            segment_ns: "ups".into(),
            statuses: CURRENT.to_vec(),
        }],
        ..spec(&s, &s.pdg)
    };
    assert_eq!(ids(&export(&s, spec).await), [["CRMID:c1", "Email:ana@example.com"]]);
}

#[tokio::test]
async fn an_incremental_export_merges_every_fragment_of_the_profiles_touched_after_it() {
    let s = setup().await;
    let first = s
        .caller
        .ingest_json_lines(
            &s.crm,
            &[
                customer("c1", "ana@example.com", ups("realized")),
                customer("c2", "bo@example.com", ups("realized")),
                customer("c3", "cy@example.com", json!({})),
            ],
        )
        .await;
    let from = first["completed"].as_i64().unwrap();
    let second = s
        .caller
        .ingest_json_lines(&s.loyalty, &[member("L1", "ana@example.com", json!({}))])
        .await;
    let touched = export(
        &s,
        ExportSpec {
            from_ingest: Some(from),
            ..spec(&s, &s.pdg)
        },
    )
    .await;
    assert_eq!(
        touched,
        [Exported {
            identities: vec!["CRMID:c1".into(), "Email:ana@example.com".into(), "LoyaltyID:L1".into()],
            tier: Some("tier-of-c1".into()),
            points: Some(7),
        }],
        "c1's CRM fragment, older than the time, is merged too"
    );

    // An event alone touches its profile; with a segment filter too, both must hold.
    let after_loyalty = second["completed"].as_i64().unwrap();
    s.caller
        .ingest_json_lines(&s.web, &[event("e1", "c2"), event("e2", "c3")])
        .await;
    let both = |from: i64| ExportSpec {
        from_ingest: Some(from),
        ..in_segment(&s, &s.pdg, &CURRENT)
    };
    assert_eq!(
        ids(&export(&s, both(after_loyalty)).await),
        [["CRMID:c2", "Email:bo@example.com"]]
    );
    assert_eq!(
        ids(&export(&s, both(from)).await),
        [
            vec!["CRMID:c1", "Email:ana@example.com", "LoyaltyID:L1"],
            vec!["CRMID:c2", "Email:bo@example.com"]
        ]
    );
    let unstitched = ExportSpec {
        from_ingest: Some(after_loyalty),
        ..spec(&s, "timestampOrdered-none-mp")
    };
    assert_eq!(
        ids(&export(&s, unstitched).await),
        [
            ["CRMID:c2", "Email:bo@example.com"],
            ["CRMID:c3", "Email:cy@example.com"]
        ]
    );
}
