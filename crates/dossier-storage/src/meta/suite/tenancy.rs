//! Tenancy: every read and write is scoped by organization AND sandbox. Another sandbox of the
//! same org, or the same sandbox name in another org, sees nothing of a tenant and changes
//! nothing of it, even when it names the tenant's ids.

use serde_json::json;

use dossier_model::catalog::{BatchStatus, DatasetPatch};
use dossier_model::ids::{MergePolicyId, SegmentDefinitionId};
use dossier_model::merge_policy::{AttributeMerge, MergePolicy, MergePolicyDefinition, MergePolicyListQuery};
use dossier_model::segment_definition::{SegmentDefinitionListQuery, SegmentDefinitionSpec};
use dossier_model::tenancy::Tenant;
use dossier_model::xdm::{IdentityDescriptor, SchemaListQuery, SchemaOrder};

use super::catalog::by_created;
use super::fixtures::{
    client, committed_batch, dataset_on, new_export_job, processing_batch, profile_enabled_tags, profile_schema,
    segment_spec, three_tenants,
};
use super::merge_policies::{create as create_policy, definition};
use super::segment_definitions::create as create_segment;
use crate::meta::{
    BatchFilter, BatchUpload, DatasetDeletion, DatasetFilter, ExportJobCreation, ExportJobListing, FileKind,
    IdentityGraphVersion, MergePolicyWriteError, MetaStore, SegmentDefinitionWriteError,
};

/// Everything one tenant can own, written in `owner`.
struct Owned {
    dataset: dossier_model::catalog::Dataset,
    committed: dossier_model::catalog::Batch,
    processing: dossier_model::catalog::Batch,
    file_id: String,
    schema_id: String,
    descriptor_id: String,
    policy: MergePolicyId,
    segment: SegmentDefinitionId,
    job_id: i64,
}

async fn fill(store: &MetaStore, owner: &Tenant) -> Owned {
    let registered = profile_schema(owner, "Owned", json!({}));
    store.insert_schema(&registered).await.unwrap();
    let descriptor = IdentityDescriptor {
        id: IdentityDescriptor::generate_id(),
        org: owner.org.clone(),
        sandbox: owner.sandbox.clone(),
        schema_id: registered.schema.id.clone(),
        path: "personalEmail.address".into(),
        namespace: "Email".into(),
        primary: true,
        created: 1,
        created_client: client(),
    };
    assert!(store.insert_identity_descriptor(&descriptor).await.unwrap());
    let dataset = dataset_on(owner, "owned", &registered.schema.id, true, 1);
    store.insert_dataset_checked(&dataset).await.unwrap().unwrap();
    let committed = committed_batch(store, &dataset, 2, 3).await;
    let processing = processing_batch(store, &dataset, 4).await;
    let loading = super::fixtures::batch(&dataset, BatchStatus::Loading, 5);
    store.insert_batch(&loading).await.unwrap();
    let upload = BatchUpload {
        name: "a.json".into(),
        path: "staging/a".into(),
        size: 1,
    };
    store.record_upload(owner, &loading.id, &upload, 6).await.unwrap();
    let file_id = store.batch_files(owner, &committed.id, FileKind::Data).await.unwrap()[0]
        .file_id
        .clone();
    let policy = create_policy(store, owner, definition("owned", false)).await.id;
    let segment = create_segment(store, owner, segment_spec("owned", "homeAddress.countryCode = \"US\""))
        .await
        .unwrap()
        .id;
    let version = IdentityGraphVersion {
        version: 1,
        path: "graph/v1.parquet".into(),
        created: 7,
        nodes: 2,
        components: 1,
    };
    assert!(
        store
            .record_identity_graph_version(owner, &version, std::slice::from_ref(&committed.id))
            .await
            .unwrap()
    );
    let job = new_export_job(owner, &dataset.id, 8, Some(("owned-key", "digest")));
    let ExportJobCreation::Created(job) = store.create_export_job(&job, 100).await.unwrap() else {
        panic!("created");
    };
    Owned {
        dataset,
        committed,
        processing,
        file_id,
        schema_id: registered.schema.id,
        descriptor_id: descriptor.id,
        policy,
        segment,
        job_id: job.id,
    }
}

/// What `other` reads of a store where only the owner has anything.
async fn assert_sees_nothing(store: &MetaStore, other: &Tenant, owned: &Owned) {
    let all = by_created(100, 0);
    assert_eq!(store.get_dataset(other, &owned.dataset.id).await.unwrap(), None);
    assert_eq!(
        store
            .list_datasets(other, &all, &DatasetFilter::default())
            .await
            .unwrap(),
        []
    );
    assert_eq!(store.profile_enabled_datasets(other).await.unwrap(), []);
    assert_eq!(store.get_batch(other, &owned.committed.id).await.unwrap(), None);
    assert_eq!(
        store.list_batches(other, &all, &BatchFilter::default()).await.unwrap(),
        []
    );
    assert_eq!(store.committed_batches(other, &owned.dataset.id).await.unwrap(), []);
    assert_eq!(
        store
            .committed_batches_in_order(other, &owned.dataset.id)
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        store
            .batch_files(other, &owned.committed.id, FileKind::Data)
            .await
            .unwrap(),
        []
    );
    assert_eq!(store.batch_file(other, &owned.file_id).await.unwrap(), None);

    assert_eq!(store.get_schema(other, &owned.schema_id).await.unwrap(), None);
    let schemas = SchemaListQuery {
        limit: 100,
        start: 0,
        order: SchemaOrder::Created,
    };
    assert_eq!(store.list_schemas(other, &schemas).await.unwrap(), []);
    assert_eq!(
        store
            .get_identity_descriptor(other, &owned.descriptor_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.list_identity_descriptors(other).await.unwrap(), []);
    assert_eq!(
        store.profile_union(other).await.unwrap().extends,
        ["https://ns.adobe.com/xdm/context/profile"]
    );

    assert_eq!(store.merge_policy(other, &owned.policy, None).await.unwrap(), None);
    assert_eq!(store.merge_policy(other, &owned.policy, Some(1)).await.unwrap(), None);
    assert_eq!(
        store
            .merge_policies_by_id(other, std::slice::from_ref(&owned.policy))
            .await
            .unwrap(),
        []
    );
    let policies = store
        .list_merge_policies(other, &MergePolicyListQuery::from_params(&Default::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(policies.total, 1, "only its own seeded default");
    assert_eq!(policies.items[0].sandbox, other.sandbox);
    assert_eq!(policies.items[0].org, other.org);

    assert_eq!(store.segment_definition(other, &owned.segment).await.unwrap(), None);
    assert_eq!(
        store
            .segment_definitions_by_id(other, std::slice::from_ref(&owned.segment))
            .await
            .unwrap(),
        []
    );
    let segments = SegmentDefinitionListQuery::from_params(&Default::default()).unwrap();
    assert_eq!(store.list_segment_definitions(other, &segments).await.unwrap().total, 0);

    assert_eq!(store.latest_identity_graph_version(other).await.unwrap(), None);
    assert_eq!(store.identity_graph_versions(other).await.unwrap(), []);
    assert_eq!(store.identity_graph_covered_batches(other, 1).await.unwrap(), []);

    assert_eq!(store.export_job(other, owned.job_id).await.unwrap(), None);
    assert_eq!(
        store.export_job_by_idempotency_key(other, "owned-key").await.unwrap(),
        None
    );
    let jobs = ExportJobListing {
        limit: 100,
        ..ExportJobListing::default()
    };
    assert_eq!(store.list_export_jobs(other, &jobs).await.unwrap(), []);
}

pub(crate) async fn reads_of_another_tenant_find_nothing(store: MetaStore) {
    let [owner, same_org, same_name] = three_tenants(&store).await;
    let owned = fill(&store, &owner).await;
    for other in [&same_org, &same_name] {
        assert_sees_nothing(&store, other, &owned).await;
    }
    // The owner sees what it wrote (so the reads above could have found something).
    assert!(store.get_dataset(&owner, &owned.dataset.id).await.unwrap().is_some());
    assert_eq!(
        store.committed_batches(&owner, &owned.dataset.id).await.unwrap().len(),
        1
    );
    assert!(store.batch_file(&owner, &owned.file_id).await.unwrap().is_some());
    assert!(
        store
            .get_identity_descriptor(&owner, &owned.descriptor_id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .merge_policies_by_id(&owner, std::slice::from_ref(&owned.policy))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .segment_definitions_by_id(&owner, std::slice::from_ref(&owned.segment))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.identity_graph_covered_batches(&owner, 1).await.unwrap(),
        std::slice::from_ref(&owned.committed.id)
    );
    assert!(store.export_job(&owner, owned.job_id).await.unwrap().is_some());
    assert_eq!(
        store.profile_enabled_datasets(&owner).await.unwrap(),
        [store.get_dataset(&owner, &owned.dataset.id).await.unwrap().unwrap()]
    );
}

pub(crate) async fn writes_to_another_tenant_change_nothing(store: MetaStore) {
    let [owner, same_org, same_name] = three_tenants(&store).await;
    let owned = fill(&store, &owner).await;
    let dataset_before = store.get_dataset(&owner, &owned.dataset.id).await.unwrap();
    for other in [&same_org, &same_name] {
        let rename = DatasetPatch {
            name: Some("stolen".into()),
            tags: Some(profile_enabled_tags()),
            ..DatasetPatch::default()
        };
        assert_eq!(
            store
                .update_dataset(other, &owned.dataset.id, &rename, 99)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .update_dataset_checked(other, &owned.dataset.id, &rename, 99)
                .await
                .unwrap(),
            Ok(None)
        );
        assert_eq!(
            store.delete_dataset(other, &owned.dataset.id).await.unwrap(),
            DatasetDeletion::NotFound
        );
        assert_eq!(
            store
                .transition_batch(
                    other,
                    &owned.processing.id,
                    &[BatchStatus::Processing],
                    BatchStatus::Aborted,
                    99
                )
                .await
                .unwrap(),
            None
        );
        let outcome = super::fixtures::success(&owned.processing, 99, &["stolen.parquet"]);
        assert!(!store.commit_batch(other, &owned.processing.id, &outcome).await.unwrap());

        let policy = store
            .update_merge_policy(other, &owned.policy, 99, |current| {
                Ok(MergePolicyDefinition {
                    name: "stolen".into(),
                    ..current.definition()
                })
            })
            .await;
        assert!(matches!(policy, Err(MergePolicyWriteError::NotFound(_))), "{policy:?}");
        let deleted = store.delete_merge_policy(other, &owned.policy).await;
        assert!(
            matches!(deleted, Err(MergePolicyWriteError::NotFound(_))),
            "{deleted:?}"
        );
        let ranked = MergePolicy::new(
            MergePolicyId::generate(),
            other,
            MergePolicyDefinition {
                attribute_merge: AttributeMerge::DataSetPrecedence {
                    order: vec![owned.dataset.id.clone()],
                },
                ..definition("ranked", false)
            },
            99,
        );
        let foreign_dataset = store.create_merge_policy(&ranked).await;
        assert!(
            matches!(foreign_dataset, Err(MergePolicyWriteError::UnknownDataset(_))),
            "{foreign_dataset:?}"
        );

        let segment = store
            .update_segment_definition(
                other,
                &owned.segment,
                99,
                |current| {
                    Ok(SegmentDefinitionSpec {
                        name: "stolen".into(),
                        ..current.spec()
                    })
                },
                super::fixtures::check_pql,
            )
            .await;
        assert!(
            matches!(segment, Err(SegmentDefinitionWriteError::NotFound(_))),
            "{segment:?}"
        );
        let deleted = store.delete_segment_definition(other, &owned.segment).await;
        assert!(
            matches!(deleted, Err(SegmentDefinitionWriteError::NotFound(_))),
            "{deleted:?}"
        );
        // A definition elsewhere naming the owner's does not make it a dependent there.
        let expression = format!("inSegment(\"{}\")", owned.segment);
        create_segment(&store, other, segment_spec("follower", &expression))
            .await
            .unwrap();

        assert_eq!(store.prune_identity_graph_versions(other, 0).await.unwrap(), []);
        assert!(!store.discard_identity_graph_version(other, 1).await.unwrap());
    }

    assert_eq!(
        store.get_dataset(&owner, &owned.dataset.id).await.unwrap(),
        dataset_before
    );
    let processing = store.get_batch(&owner, &owned.processing.id).await.unwrap().unwrap();
    assert_eq!(processing.status, BatchStatus::Processing);
    assert_eq!(
        store
            .batch_files(&owner, &owned.processing.id, FileKind::Data)
            .await
            .unwrap(),
        []
    );
    let policy = store.merge_policy(&owner, &owned.policy, None).await.unwrap().unwrap();
    assert_eq!((policy.version, policy.name.as_str()), (1, "owned"));
    let segment = store.segment_definition(&owner, &owned.segment).await.unwrap().unwrap();
    assert_eq!(segment.name, "owned");
    assert_eq!(store.identity_graph_versions(&owner).await.unwrap().len(), 1);
    assert_eq!(
        store.identity_graph_covered_batches(&owner, 1).await.unwrap(),
        std::slice::from_ref(&owned.committed.id)
    );
    assert!(
        store
            .segment_dependents(&owner, &[&owned.segment])
            .await
            .unwrap()
            .is_empty()
    );
    store.delete_segment_definition(&owner, &owned.segment).await.unwrap();
}
