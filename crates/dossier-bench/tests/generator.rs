//! The generator as its users see it: files on disk, checked against the schemas, the manifest
//! and each other.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::json::ReaderBuilder;
use dossier_bench::{DatasetKind, GenerateOptions, MANIFEST_FILE, OutputFormat, generate};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

fn run(dir: &Path, profiles: u64, seed: u64, format: OutputFormat, records_per_file: u64) -> Value {
    let mut options = GenerateOptions::new(profiles, seed, dir);
    options.format = format;
    options.records_per_file = records_per_file;
    let mut last_progress = 0;
    generate(&options, |done| last_progress = done).expect("generation succeeds");
    assert_eq!(last_progress, profiles, "the last progress report is the total");
    serde_json::from_str(&std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap()).unwrap()
}

/// Every file under `dir`, relative path → bytes.
fn all_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The records of a JSON-lines dataset, in file order.
fn json_records(dir: &Path, manifest: &Value, kind: DatasetKind) -> Vec<Value> {
    let mut records = Vec::new();
    for file in manifest["datasets"][kind.key()]["files"].as_array().unwrap() {
        let reader = BufReader::new(File::open(dir.join(file["path"].as_str().unwrap())).unwrap());
        let before = records.len();
        for line in reader.lines() {
            records.push(serde_json::from_str(&line.unwrap()).unwrap());
        }
        assert_eq!(
            (records.len() - before) as u64,
            file["records"].as_u64().unwrap(),
            "{file}"
        );
    }
    records
}

#[test]
fn the_same_seed_gives_byte_identical_files_in_both_formats() {
    for format in [OutputFormat::JsonLines, OutputFormat::Parquet] {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        run(a.path(), 1_500, 42, format, 700);
        run(b.path(), 1_500, 42, format, 700);
        run(c.path(), 1_500, 43, format, 700);
        let (first, second, other) = (all_files(a.path()), all_files(b.path()), all_files(c.path()));
        assert!(first.len() > 8, "split into several files: {:?}", first.keys());
        assert_eq!(first, second, "{format:?}");
        let data_differs = first
            .iter()
            .filter(|(name, _)| !name.starts_with("schemas/"))
            .any(|(name, bytes)| other.get(name) != Some(bytes));
        assert!(data_differs, "another seed gives other data ({format:?})");
    }
}

#[test]
fn a_smaller_population_is_a_prefix_of_a_larger_one() {
    let (small, large) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let small_manifest = run(small.path(), 300, 7, OutputFormat::JsonLines, 1_000_000);
    let large_manifest = run(large.path(), 900, 7, OutputFormat::JsonLines, 1_000_000);
    for kind in DatasetKind::ALL {
        let few = json_records(small.path(), &small_manifest, kind);
        let many = json_records(large.path(), &large_manifest, kind);
        assert_eq!(few[..], many[..few.len()], "{}", kind.key());
    }
}

#[test]
fn every_record_passes_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = run(dir.path(), 3_000, 1, OutputFormat::JsonLines, 2_000);
    for kind in DatasetKind::ALL {
        let schema = kind.xdm_schema();
        let records = json_records(dir.path(), &manifest, kind);
        assert!(!records.is_empty());
        for record in &records {
            if let Err(errors) = schema.validate_record(record) {
                panic!("{} record {record} is invalid: {errors:?}", kind.key());
            }
            let primaries: usize = record["identityMap"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|ids| ids.as_array().unwrap())
                .filter(|id| id["primary"] == true)
                .count();
            assert_eq!(primaries, 1, "exactly one primary identity: {record}");
        }
    }
}

#[test]
fn overlap_and_event_volume_are_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = 5_000;
    let manifest = run(dir.path(), profiles, 2, OutputFormat::JsonLines, 1_000_000);
    let expected = &manifest["expected"];
    let share = |key: &str| expected[key].as_u64().unwrap() as f64 / profiles as f64;
    assert!((share("stitched") - 0.60).abs() < 0.03, "{}", share("stitched"));
    assert!((share("crmOnly") - 0.25).abs() < 0.03, "{}", share("crmOnly"));
    assert!((share("loyaltyOnly") - 0.15).abs() < 0.03, "{}", share("loyaltyOnly"));

    // Events of one customer share the first 16 hex digits of their `_id`.
    let events = json_records(dir.path(), &manifest, DatasetKind::Events);
    let mut per_customer: HashMap<String, u64> = HashMap::new();
    for event in &events {
        *per_customer
            .entry(event["_id"].as_str().unwrap()[..16].to_owned())
            .or_default() += 1;
    }
    let average = events.len() as f64 / profiles as f64;
    assert!((average - 5.0).abs() < 0.5, "average {average}");
    let at_most_two = profiles as usize - per_customer.len() + per_customer.values().filter(|&&n| n <= 2).count();
    let share_at_most_two = at_most_two as f64 / profiles as f64;
    assert!(
        share_at_most_two > 0.4,
        "many customers have 0-2 events: {share_at_most_two}"
    );
    let busiest = per_customer.values().max().copied().unwrap();
    assert!(busiest >= 50, "a long tail: the busiest customer has {busiest} events");
}

/// Union-find over identities rendered as `namespace:id`.
#[derive(Default)]
struct Graph {
    parent: HashMap<String, String>,
}

impl Graph {
    fn root(&mut self, node: &str) -> String {
        let parent = self
            .parent
            .entry(node.to_owned())
            .or_insert_with(|| node.to_owned())
            .clone();
        if parent == node {
            return parent;
        }
        let root = self.root(&parent);
        self.parent.insert(node.to_owned(), root.clone());
        root
    }

    fn link(&mut self, nodes: &[String]) {
        let first = self.root(&nodes[0]);
        for node in &nodes[1..] {
            let root = self.root(node);
            self.parent.insert(root, first.clone());
        }
    }
}

fn identities(record: &Value) -> Vec<String> {
    let mut all = Vec::new();
    for (namespace, ids) in record["identityMap"].as_object().unwrap() {
        for id in ids.as_array().unwrap() {
            all.push(format!("{namespace}:{}", id["id"].as_str().unwrap()));
        }
    }
    all
}

fn primary(record: &Value) -> String {
    for (namespace, ids) in record["identityMap"].as_object().unwrap() {
        for id in ids.as_array().unwrap() {
            if id["primary"] == true {
                return format!("{namespace}:{}", id["id"].as_str().unwrap());
            }
        }
    }
    panic!("no primary identity in {record}")
}

#[test]
fn manifest_counts_equal_what_the_files_hold() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = run(dir.path(), 4_000, 3, OutputFormat::JsonLines, 1_500);
    let crm = json_records(dir.path(), &manifest, DatasetKind::Crm);
    let loyalty = json_records(dir.path(), &manifest, DatasetKind::Loyalty);
    let events = json_records(dir.path(), &manifest, DatasetKind::Events);
    for (kind, records) in [
        (DatasetKind::Crm, &crm),
        (DatasetKind::Loyalty, &loyalty),
        (DatasetKind::Events, &events),
    ] {
        assert_eq!(manifest["datasets"][kind.key()]["records"], records.len() as u64);
        for file in manifest["datasets"][kind.key()]["files"].as_array().unwrap() {
            let bytes = std::fs::metadata(dir.path().join(file["path"].as_str().unwrap()))
                .unwrap()
                .len();
            assert_eq!(file["bytes"], bytes);
        }
    }
    let expected = &manifest["expected"];

    let crm_emails: HashSet<&str> = crm
        .iter()
        .map(|r| r["personalEmail"]["address"].as_str().unwrap())
        .collect();
    let loyalty_emails: HashSet<&str> = loyalty
        .iter()
        .map(|r| r["personalEmail"]["address"].as_str().unwrap())
        .collect();
    let stitched = crm_emails.intersection(&loyalty_emails).count() as u64;
    assert_eq!(expected["stitched"], stitched);
    assert_eq!(expected["crmOnly"], crm.len() as u64 - stitched);
    assert_eq!(expected["loyaltyOnly"], loyalty.len() as u64 - stitched);

    // Profiles under an identity graph: components of the identities that appear together.
    let mut graph = Graph::default();
    for record in crm.iter().chain(&loyalty).chain(&events) {
        graph.link(&identities(record));
    }
    let with_records: HashSet<String> = crm.iter().chain(&loyalty).map(|r| graph.root(&primary(r))).collect();
    let mut empty = HashSet::new();
    let mut anonymous_events = 0;
    for event in &events {
        let root = graph.root(&primary(event));
        if !with_records.contains(&root) {
            empty.insert(root);
            anonymous_events += 1;
        }
    }
    let pdg = &expected["profilesByIdentityGraph"]["pdg"];
    assert_eq!(pdg["withRecords"], with_records.len() as u64);
    assert_eq!(pdg["withRecords"], manifest["profiles"]);
    assert_eq!(pdg["empty"], empty.len() as u64);
    assert_eq!(expected["events"]["total"], events.len() as u64);
    assert_eq!(expected["events"]["anonymous"], anonymous_events);

    // Without a graph: one profile per primary identity.
    let none = &expected["profilesByIdentityGraph"]["none"];
    let record_primaries: HashSet<String> = crm.iter().chain(&loyalty).map(primary).collect();
    let event_primaries: HashSet<String> = events.iter().map(primary).collect();
    assert_eq!(none["withRecords"], record_primaries.len() as u64);
    assert_eq!(none["empty"], event_primaries.len() as u64);

    check_audience_counts(expected, &crm);
}

fn check_audience_counts(expected: &Value, crm: &[Value]) {
    let in_window = |time: &str| {
        let parsed: jiff::Timestamp = time.parse().unwrap();
        parsed >= "2019-09-01T00:00:00Z".parse().unwrap() && parsed < "2019-09-02T00:00:00Z".parse().unwrap()
    };
    let mut tutorial_batches = [0u64; 2];
    let mut tutorial_profiles = 0;
    for audience in expected["audiences"].as_array().unwrap() {
        let (namespace, id) = (
            audience["namespace"].as_str().unwrap(),
            audience["segmentId"].as_str().unwrap(),
        );
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        let mut window: BTreeMap<String, u64> = BTreeMap::new();
        for record in crm {
            let membership = &record["segmentMembership"][namespace][id];
            let Some(status) = membership["status"].as_str() else {
                continue;
            };
            *by_status.entry(status.to_owned()).or_default() += 1;
            if in_window(membership["lastQualificationTime"].as_str().unwrap()) {
                *window.entry(status.to_owned()).or_default() += 1;
            }
        }
        for status in ["realized", "existing", "exited"] {
            assert_eq!(
                audience["profiles"][status],
                by_status.get(status).copied().unwrap_or(0)
            );
            assert_eq!(
                audience["qualifiedInTutorialWindow"][status],
                window.get(status).copied().unwrap_or(0)
            );
            assert!(
                by_status.get(status).copied().unwrap_or(0) > 0,
                "{namespace} has {status} members"
            );
        }
    }
    for record in crm {
        let matches = [
            ("AAM", "4edc8488-2c35-4f6d-b4c6-9075c68d2df4", "realized"),
            ("ups", "1rfe8422-334d-12f4-3sd4-12cf6g990g51", "exited"),
        ]
        .map(|(namespace, id, status)| {
            let membership = &record["segmentMembership"][namespace][id];
            membership["status"] == status
                && in_window(
                    membership["lastQualificationTime"]
                        .as_str()
                        .unwrap_or("1970-01-01T00:00:00Z"),
                )
        });
        for (count, matched) in tutorial_batches.iter_mut().zip(matches) {
            *count += u64::from(matched);
        }
        tutorial_profiles += u64::from(matches.contains(&true));
    }
    assert!(
        tutorial_batches.iter().all(|&n| n > 0),
        "the tutorial's job selects profiles: {tutorial_batches:?}"
    );
    assert_eq!(
        expected["tutorialExport"]["perSegment"],
        serde_json::json!(tutorial_batches)
    );
    assert_eq!(expected["tutorialExport"]["distinctProfiles"], tutorial_profiles);
}

fn parquet_batches(path: &Path) -> Vec<RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    reader.map(Result::unwrap).collect()
}

#[test]
fn parquet_files_hold_the_json_records_typed_by_the_schema() {
    let (json_dir, parquet_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let json_manifest = run(json_dir.path(), 600, 5, OutputFormat::JsonLines, 1_000);
    let parquet_manifest = run(parquet_dir.path(), 600, 5, OutputFormat::Parquet, 1_000);
    assert_eq!(json_manifest["expected"], parquet_manifest["expected"]);
    for kind in DatasetKind::ALL {
        let schema = kind.xdm_schema().arrow_schema();
        let mut from_parquet = Vec::new();
        for file in parquet_manifest["datasets"][kind.key()]["files"].as_array().unwrap() {
            let batches = parquet_batches(&parquet_dir.path().join(file["path"].as_str().unwrap()));
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(file["records"], rows as u64);
            for batch in &batches {
                assert_eq!(batch.schema().fields(), schema.fields(), "{}", kind.key());
            }
            from_parquet.extend(batches);
        }
        let records = json_records(json_dir.path(), &json_manifest, kind);
        let mut decoder = ReaderBuilder::new(schema.clone()).build_decoder().unwrap();
        decoder.serialize(&records).unwrap();
        let from_json = decoder.flush().unwrap().unwrap();
        let parquet_rows = arrow::compute::concat_batches(&schema, &from_parquet).unwrap();
        assert_eq!(
            parquet_rows.num_rows(),
            json_manifest["datasets"][kind.key()]["records"].as_u64().unwrap() as usize
        );
        assert_eq!(
            parquet_rows.with_schema(schema.clone()).unwrap(),
            from_json,
            "{}",
            kind.key()
        );
    }
}

#[test]
fn schemas_and_descriptors_are_written_for_registration() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = run(dir.path(), 50, 1, OutputFormat::JsonLines, 1_000_000);
    for kind in DatasetKind::ALL {
        let entry = &manifest["datasets"][kind.key()];
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(entry["schema"].as_str().unwrap())).unwrap())
                .unwrap();
        assert_eq!(schema, kind.schema_body());
        assert_eq!(entry["class"], schema["meta:class"]);
        let descriptors: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(entry["descriptors"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        assert_eq!(descriptors, serde_json::json!(kind.identity_descriptors("{SCHEMA_ID}")));
    }
}

#[test]
fn an_earlier_run_is_replaced_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 100, 1, OutputFormat::JsonLines, 30);
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let mut options = GenerateOptions::new(10, 1, dir.path());
    let refused = generate(&options, |_| {}).unwrap_err();
    assert!(refused.to_string().contains("--overwrite"), "{refused}");
    options.overwrite = true;
    generate(&options, |_| {}).unwrap();
    let files = all_files(dir.path());
    assert!(files.contains_key("notes.txt"), "files of others are kept");
    assert!(
        !files.keys().any(|name| name.contains("part-00001")),
        "no file of the earlier run is left"
    );
}
