//! The identity graph rebuilt as DataFusion plans equals the fold's: same snapshot rows (every
//! identity in the same component, under the same key, in the same order), same counts, same
//! covered batches, and an export after the rebuild gives the rows it gave after the fold.
//! Real fragment files in a real lake folder, a real SQLite store, a local DataFusion session.

use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use dossier_cluster::graph::{GraphError, rebuild_graph};
use dossier_cluster::session::local_context;
use dossier_engine::export::{CancelFlag, ExportProgress, ExportRequest, run_export};
use dossier_engine::identity::Identity;
use dossier_engine::identity::fold_pending;
use dossier_engine::identity::snapshot::read_snapshot;
use dossier_engine::ingest::{FileLimits, FragmentWriter};
use dossier_model::catalog::{BatchStatus, Dataset};
use dossier_model::export_job::{ExportBatchTarget, ExportSpec, QualificationWindow};
use dossier_model::ids::{BatchId, MergePolicyId};
use dossier_model::merge_policy::{AttributeMerge, IdentityGraphType, MergePolicy, MergePolicyDefinition};
use dossier_model::schema::{PROFILE_SCHEMA_NAME, PROFILE_UNION_SCHEMA_ID};
use dossier_model::tenancy::Tenant;
use dossier_model::time::{now_millis, now_seconds};
use dossier_storage::meta::fixtures::{dataset_on, processing_batch, stored_dataset, with_prod};
use dossier_storage::meta::{BatchFile, BatchOutcome, FileKind, IdentityGraphVersion};
use dossier_storage::{Lake, MetaStore};
use object_store::path::Path as ObjectPath;

/// One fragment: its identities as (namespace, id), the first one primary.
type Fragment = Vec<(&'static str, String)>;

/// A sandbox with one profile-enabled dataset on the profile union, in a temporary folder (or
/// in an existing data dir, for measurements).
struct Sandbox {
    root: std::path::PathBuf,
    _temporary: Option<tempfile::TempDir>,
    meta: MetaStore,
    lake: Lake,
    tenant: Tenant,
    dataset: Dataset,
    /// Rows per fragment file: few in the tests, so a batch has several files.
    file_rows: usize,
}

impl Sandbox {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
        let tenant = with_prod(&meta).await;
        Self::in_store(dir.path().to_owned(), Some(dir), meta, tenant).await
    }

    /// A new profile-enabled dataset in `tenant` of the store and lake under `root`.
    async fn in_store(
        root: std::path::PathBuf,
        temporary: Option<tempfile::TempDir>,
        meta: MetaStore,
        tenant: Tenant,
    ) -> Self {
        let lake = Lake::local(&root.join("lake")).unwrap();
        let dataset = dataset_on(&tenant, "crm", PROFILE_UNION_SCHEMA_ID, true, now_millis());
        meta.insert_dataset(&dataset).await.unwrap();
        Self {
            root,
            _temporary: temporary,
            meta,
            lake,
            tenant,
            dataset,
            file_rows: 7,
        }
    }

    /// Writes `fragments` as the fragment files of a new batch, as ingestion does, and commits it.
    async fn commit(&self, fragments: &[Fragment]) -> BatchId {
        let batch = processing_batch(&self.meta, &self.dataset, now_millis()).await;
        let schema = self.meta.profile_union(&self.tenant).await.unwrap().arrow_schema();
        let folder = Lake::batch_prefix(&self.tenant, &self.dataset.id, &batch.id);
        let limits = FileLimits {
            max_rows: self.file_rows,
        };
        let mut writer =
            FragmentWriter::new(self.lake.store().clone(), folder, batch.id.as_str(), schema, limits).unwrap();
        for (n, fragment) in fragments.iter().enumerate() {
            writer
                .push(record(&format!("{}-{n}", batch.id), fragment))
                .await
                .unwrap();
        }
        let written = writer.finish().await.unwrap();
        let completed = now_millis();
        let files: Vec<BatchFile> = written
            .iter()
            .map(|file| BatchFile {
                file_id: format!("{}-{}", batch.id, file.name),
                batch_id: batch.id.clone(),
                dataset_id: self.dataset.id.clone(),
                kind: FileKind::Data,
                name: file.name.clone(),
                path: file.location.to_string(),
                size: file.size,
                records: file.records,
                created: completed,
            })
            .collect();
        let outcome = BatchOutcome {
            status: BatchStatus::Success,
            completed,
            records_read: fragments.len() as i64,
            record_count: fragments.len() as i64,
            size: files.iter().map(|f| f.size).sum(),
            errors: Vec::new(),
            files,
        };
        assert!(self.meta.commit_batch(&self.tenant, &batch.id, &outcome).await.unwrap());
        batch.id
    }

    /// Every row of the snapshot of `version`, in file order.
    async fn snapshot(&self, version: &IdentityGraphVersion) -> Vec<(Identity, Identity)> {
        let mut rows = Vec::new();
        read_snapshot(&self.lake, &ObjectPath::from(version.path.as_str()), |identity, key| {
            rows.push((identity, key.clone()))
        })
        .await
        .unwrap();
        rows
    }

    async fn covered(&self, version: &IdentityGraphVersion) -> Vec<BatchId> {
        let mut covered = self
            .meta
            .identity_graph_covered_batches(&self.tenant, version.version)
            .await
            .unwrap();
        covered.sort();
        covered
    }

    /// Folds the committed batches, rebuilds the graph on a local session, and checks the two
    /// versions hold the same graph. Gives the rebuild's rounds.
    async fn fold_then_rebuild_agree(&self) -> usize {
        let folded = fold_pending(&self.meta, &self.lake, &self.tenant)
            .await
            .unwrap()
            .version
            .expect("a folded version");
        let ctx = local_context(&self.lake).unwrap();
        let rebuilt = rebuild_graph(&ctx, &self.meta, &self.lake, &self.tenant).await.unwrap();
        assert_eq!(rebuilt.version.version, folded.version + 1);
        assert_eq!(
            (rebuilt.version.nodes, rebuilt.version.components),
            (folded.nodes, folded.components)
        );
        assert_eq!(self.snapshot(&rebuilt.version).await, self.snapshot(&folded).await);
        assert_eq!(self.covered(&rebuilt.version).await, self.covered(&folded).await);
        let latest = self.meta.latest_identity_graph_version(&self.tenant).await.unwrap();
        assert_eq!(
            latest,
            Some(rebuilt.version.clone()),
            "the rebuild is the current version"
        );
        let scratch = self
            .root
            .join("lake")
            .join(self.tenant.org.as_str())
            .join("prod/_scratch");
        let left: Vec<_> = walk(&scratch);
        assert!(left.is_empty(), "the scratch files are gone: {left:?}");
        rebuilt.rounds
    }
}

/// Files under `dir`, recursively (none when it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() { walk(&path) } else { vec![path] }
        })
        .collect()
}

/// A profile record with `fragment`'s identities in its identityMap.
fn record(id: &str, fragment: &Fragment) -> Value {
    let mut map: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (n, (namespace, value)) in fragment.iter().enumerate() {
        map.entry(namespace)
            .or_default()
            .push(json!({"id": value, "primary": n == 0}));
    }
    json!({"_id": id, "identityMap": map})
}

fn fragment(identities: &[(&'static str, &str)]) -> Fragment {
    identities.iter().map(|(ns, id)| (*ns, (*id).to_owned())).collect()
}

/// A path of `len` identities whose links arrive out of order and whose ids do not follow
/// the path, so labels have far to travel.
fn long_path(len: usize) -> Vec<Fragment> {
    let node = |i: usize| format!("p{:05}", (i * 7919) % len);
    let mut links: Vec<Fragment> = (1..len)
        .map(|i| vec![("ECID", node(i - 1)), ("ECID", node(i))])
        .collect();
    links.reverse();
    links
}

#[tokio::test]
async fn chains_stars_singletons_and_triples_rebuild_into_the_folds_components() {
    let sandbox = Sandbox::new().await;
    let chain: Vec<Fragment> = (1..12)
        .map(|i| fragment(&[("CRMID", &format!("c{i}")), ("CRMID", &format!("c{}", i + 1))]))
        .collect();
    sandbox.commit(&chain[..6]).await;
    sandbox.commit(&chain[6..]).await;
    let star: Vec<Fragment> = (0..20)
        .map(|i| fragment(&[("Email", &format!("leaf{i:02}@x")), ("Phone", "hub")]))
        .collect();
    sandbox.commit(&star).await;
    sandbox
        .commit(&[
            fragment(&[("ECID", "alone")]),
            fragment(&[]),
            fragment(&[("ECID", "e1"), ("Email", "ana@x"), ("CRMID", "z9")]),
            fragment(&[("Email", "ana@x"), ("Phone", "hub")]),
            fragment(&[("ECID", "alone")]),
            fragment(&[("Loyalty", "L1"), ("Loyalty", "L2"), ("Loyalty", "L1")]),
        ])
        .await;
    sandbox.fold_then_rebuild_agree().await;
}

#[tokio::test]
async fn a_long_path_takes_several_rounds_and_still_agrees() {
    let sandbox = Sandbox::new().await;
    let path = long_path(400);
    for part in path.chunks(100) {
        sandbox.commit(part).await;
    }
    let rounds = sandbox.fold_then_rebuild_agree().await;
    assert!(rounds > 2, "a path of 400 needs rounds: {rounds}");
}

#[tokio::test]
async fn a_sandbox_without_batches_has_nothing_to_rebuild() {
    let sandbox = Sandbox::new().await;
    let ctx = local_context(&sandbox.lake).unwrap();
    let error = rebuild_graph(&ctx, &sandbox.meta, &sandbox.lake, &sandbox.tenant)
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::NoBatches { .. }), "{error}");
}

#[tokio::test]
async fn a_rebuild_before_any_fold_covers_every_committed_batch() {
    let sandbox = Sandbox::new().await;
    let first = sandbox.commit(&[fragment(&[("CRMID", "a"), ("Email", "a@x")])]).await;
    let second = sandbox.commit(&[fragment(&[("Email", "a@x"), ("ECID", "e")])]).await;
    let ctx = local_context(&sandbox.lake).unwrap();
    let rebuilt = rebuild_graph(&ctx, &sandbox.meta, &sandbox.lake, &sandbox.tenant)
        .await
        .unwrap();
    assert_eq!(rebuilt.version.version, 1);
    assert_eq!((rebuilt.version.nodes, rebuilt.version.components), (3, 1));
    let mut both = vec![first, second];
    both.sort();
    assert_eq!(sandbox.covered(&rebuilt.version).await, both);
    // Nothing is left for a fold.
    let outcome = fold_pending(&sandbox.meta, &sandbox.lake, &sandbox.tenant)
        .await
        .unwrap();
    assert_eq!(outcome.folded_batches, 0);
}

/// Runs a pdg export of the whole sandbox; gives its rows as sorted JSON lines and the graph
/// version it keyed profiles with.
async fn export_rows(sandbox: &Sandbox, policy: &MergePolicyId, target: &Dataset) -> (Vec<String>, Option<i64>) {
    let request = ExportRequest {
        tenant: sandbox.tenant.clone(),
        job_id: 1,
        spec: ExportSpec {
            fields: None,
            segments: Vec::new(),
            qualification: QualificationWindow { start: None, end: None },
            from_ingest: None,
            empty_profiles: false,
            event_list: None,
            dataset_id: target.id.clone(),
            segment_per_batch: false,
            merge_policy_id: policy.clone(),
            merge_policy_version: 1,
            evaluate_segments: false,
        },
        batches: vec![ExportBatchTarget {
            batch_id: BatchId::generate(),
            segment: None,
        }],
    };
    let outcome = run_export(
        &sandbox.meta,
        &sandbox.lake,
        &request,
        &ExportProgress::default(),
        &CancelFlag::default(),
    )
    .await
    .unwrap();
    let mut lines = Vec::new();
    for file in outcome.batches.iter().flat_map(|b| &b.files) {
        let local = sandbox.root.join("lake").join(&file.path);
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(local).unwrap())
                .unwrap()
                .build()
                .unwrap();
        for rows in reader {
            let mut out = arrow::json::LineDelimitedWriter::new(Vec::new());
            out.write(&rows.unwrap()).unwrap();
            out.finish().unwrap();
            lines.extend(String::from_utf8(out.into_inner()).unwrap().lines().map(str::to_owned));
        }
    }
    lines.sort();
    (lines, outcome.identity_graph_version)
}

#[tokio::test]
async fn an_export_after_a_rebuild_gives_the_rows_it_gave_after_the_fold() {
    let sandbox = Sandbox::new().await;
    sandbox
        .commit(&[
            fragment(&[("CRMID", "c1"), ("Email", "ana@x")]),
            fragment(&[("CRMID", "c2")]),
            fragment(&[("ECID", "e7"), ("Email", "bo@x")]),
        ])
        .await;
    sandbox
        .commit(&[
            fragment(&[("Loyalty", "L1"), ("Email", "ana@x")]),
            fragment(&[("ECID", "e8"), ("CRMID", "c2")]),
        ])
        .await;
    let policy = MergePolicyId::from_string("7d1e8c1a-0b5e-4c7e-9a61-5f0d3b7e2c41");
    let definition = MergePolicyDefinition {
        name: "stitched".into(),
        schema_name: PROFILE_SCHEMA_NAME.into(),
        identity_graph: IdentityGraphType::Pdg,
        attribute_merge: AttributeMerge::TimestampOrdered,
        is_default: false,
        is_active_on_edge: false,
    };
    let created = MergePolicy::new(policy.clone(), &sandbox.tenant, definition, now_seconds());
    sandbox.meta.create_merge_policy(&created).await.unwrap();
    let target = stored_dataset(&sandbox.meta, &sandbox.tenant, "Profile Data Export", now_millis()).await;

    let (after_fold, folded) = export_rows(&sandbox, &policy, &target).await;
    assert_eq!(after_fold.len(), 3, "three stitched profiles: {after_fold:#?}");
    let ctx = local_context(&sandbox.lake).unwrap();
    let rebuilt = rebuild_graph(&ctx, &sandbox.meta, &sandbox.lake, &sandbox.tenant)
        .await
        .unwrap();
    assert_eq!(folded.map(|v| v + 1), Some(rebuilt.version.version));
    let (after_rebuild, keyed) = export_rows(&sandbox, &policy, &target).await;
    assert_eq!(
        keyed,
        Some(rebuilt.version.version),
        "the export keyed profiles with the rebuilt graph"
    );
    assert_eq!(after_rebuild, after_fold);
}

/// Identities from a small pool (so fragments collide into components), in three namespaces.
fn random_fragment() -> impl Strategy<Value = Fragment> {
    let namespaces = ["Email", "CRMID", "ECID"];
    proptest::collection::vec(0u8..40, 0..4).prop_map(move |ids| {
        ids.into_iter()
            .map(|n| (namespaces[n as usize % 3], format!("i{n}")))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn a_rebuild_of_random_links_equals_the_fold(
        batches in proptest::collection::vec(proptest::collection::vec(random_fragment(), 1..12), 1..4),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let sandbox = Sandbox::new().await;
            for batch in &batches {
                sandbox.commit(batch).await;
            }
            sandbox.fold_then_rebuild_agree().await;
        });
    }
}

/// Not a check: times the fold and the rebuild on an existing data dir (`dossier demo`'s, say),
/// one per run so that each run's peak memory is its own (`/usr/bin/time -v`).
/// `DOSSIER_GRAPH_DATA_DIR` names the dir (its meta.sqlite and lake), `DOSSIER_GRAPH_MEASURE`
/// what to do in ORG_A's sandbox `DOSSIER_GRAPH_SANDBOX` (default prod): `fold` discards every
/// version and folds all batches from nothing; `rebuild` rebuilds on a local session;
/// `path:N` creates the sandbox and commits a path of N identities (many rounds) into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement on a data dir the caller names"]
async fn measure_on_a_data_dir() {
    let root = std::path::PathBuf::from(std::env::var("DOSSIER_GRAPH_DATA_DIR").unwrap());
    let what = std::env::var("DOSSIER_GRAPH_MEASURE").unwrap();
    let sandbox = std::env::var("DOSSIER_GRAPH_SANDBOX").unwrap_or_else(|_| "prod".into());
    let meta = MetaStore::open_sqlite(&root.join("meta.sqlite")).await.unwrap();
    let lake = Lake::local(&root.join("lake")).unwrap();
    let tenant = dossier_storage::meta::fixtures::tenant(dossier_storage::meta::fixtures::ORG_A, &sandbox);
    let started = std::time::Instant::now();
    match what.split_once(':') {
        Some(("path", n)) => {
            meta.create_sandbox(&tenant.org, &tenant.sandbox).await.unwrap();
            let mut sandbox = Sandbox::in_store(root.clone(), None, meta.clone(), tenant.clone()).await;
            sandbox.file_rows = FileLimits::default().max_rows;
            let path = long_path(n.parse().unwrap());
            for part in path.chunks(200_000) {
                sandbox.commit(part).await;
            }
        }
        _ if what == "fold" => {
            for version in meta.identity_graph_versions(&tenant).await.unwrap() {
                meta.discard_identity_graph_version(&tenant, version.version)
                    .await
                    .unwrap();
            }
            let outcome = fold_pending(&meta, &lake, &tenant).await.unwrap();
            eprintln!("folded {} batches: {:?}", outcome.folded_batches, outcome.version);
        }
        _ => {
            let ctx = local_context(&lake).unwrap();
            let rebuilt = rebuild_graph(&ctx, &meta, &lake, &tenant).await.unwrap();
            eprintln!("rebuilt: {rebuilt:?}");
        }
    }
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
}
