//! Export job creation and reads: ids sequential per sandbox (unique and gap-free even when
//! many requests create at once), the `Idempotency-Key` replay, the queue limit, and a job read
//! back exactly as created. The job lifecycle (claim, heartbeat, end, cancel) is the queue's.

use std::collections::HashMap;

use dossier_model::catalog::BatchStatus;
use dossier_model::export_job::{ExportJob, ExportJobMetrics, ExportJobStatus};
use dossier_model::ids::DatasetId;
use dossier_model::tenancy::Tenant;

use super::fixtures::{
    ORG_A, ORG_B, created_export_job, new_export_job, org, sandbox, stored_dataset, tenant, three_tenants, with_prod,
};
use crate::meta::{ExportJobCreation, ExportJobListing, MetaStore};

fn everything() -> ExportJobListing {
    ExportJobListing {
        limit: 1_000,
        ..ExportJobListing::default()
    }
}

async fn ids(store: &MetaStore, t: &Tenant) -> Vec<i64> {
    let mut ids: Vec<i64> = store
        .list_export_jobs(t, &everything())
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    ids.sort_unstable();
    ids
}

pub(crate) async fn ids_are_sequential_per_sandbox(store: MetaStore) {
    let [prod, dev, other_org] = three_tenants(&store).await;
    let mut targets = HashMap::new();
    for t in [&prod, &dev, &other_org] {
        targets.insert(t.clone(), stored_dataset(&store, t, "target", 1).await.id);
    }
    let create = |t: &Tenant, at| {
        let new = new_export_job(t, &targets[t], at, None);
        let store = store.clone();
        async move { created_export_job(&store, &new).await }
    };
    assert_eq!(create(&prod, 10).await, 1);
    assert_eq!(create(&prod, 11).await, 2);
    assert_eq!(create(&dev, 12).await, 1);
    assert_eq!(create(&other_org, 13).await, 1);
    assert_eq!(create(&prod, 14).await, 3);
    assert_eq!(create(&dev, 15).await, 2);
    assert_eq!(ids(&store, &prod).await, [1, 2, 3]);
    assert_eq!(ids(&store, &dev).await, [1, 2]);
}

pub(crate) async fn concurrent_creations_get_unique_gap_free_ids(store: MetaStore) {
    const PROD_JOBS: i64 = 60;
    const DEV_JOBS: i64 = 40;
    let prod = with_prod(&store).await;
    store.create_sandbox(&org(ORG_A), &sandbox("dev")).await.unwrap();
    let dev = tenant(ORG_A, "dev");
    let prod_target = stored_dataset(&store, &prod, "target", 1).await.id;
    let dev_target = stored_dataset(&store, &dev, "target", 1).await.id;
    let requests = (0..PROD_JOBS)
        .map(|n| new_export_job(&prod, &prod_target, n, None))
        .chain((0..DEV_JOBS).map(|n| new_export_job(&dev, &dev_target, n, None)));
    let tasks: Vec<_> = requests
        .map(|new| {
            let store = store.clone();
            tokio::spawn(async move { (new.tenant.clone(), created_export_job(&store, &new).await) })
        })
        .collect();
    let mut returned: HashMap<Tenant, Vec<i64>> = HashMap::new();
    for task in tasks {
        let (t, id) = task.await.unwrap();
        returned.entry(t).or_default().push(id);
    }
    for (t, count) in [(&prod, PROD_JOBS), (&dev, DEV_JOBS)] {
        let expected: Vec<i64> = (1..=count).collect();
        let mut got = returned[t].clone();
        got.sort_unstable();
        assert_eq!(got, expected, "ids handed out in {}", t.sandbox);
        assert_eq!(ids(&store, t).await, expected, "ids stored in {}", t.sandbox);
    }
}

pub(crate) async fn an_idempotency_key_replays_or_refuses(store: MetaStore) {
    let [prod, dev, _] = three_tenants(&store).await;
    let target = stored_dataset(&store, &prod, "target", 1).await.id;
    let dev_target = stored_dataset(&store, &dev, "target", 1).await.id;
    let ExportJobCreation::Created(first) = store
        .create_export_job(&new_export_job(&prod, &target, 10, Some(("key-1", "aaa"))), 100)
        .await
        .unwrap()
    else {
        panic!("created");
    };

    let retry = new_export_job(&prod, &target, 11, Some(("key-1", "aaa")));
    match store.create_export_job(&retry, 100).await.unwrap() {
        ExportJobCreation::Replayed(job) => assert_eq!(job, first, "the job the first request created"),
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(
        store.get_batch(&prod, &retry.batches[0].batch_id).await.unwrap(),
        None,
        "a replay creates nothing"
    );
    match store
        .create_export_job(&new_export_job(&prod, &target, 12, Some(("key-1", "bbb"))), 100)
        .await
        .unwrap()
    {
        ExportJobCreation::KeyReused { job_id } => assert_eq!(job_id, first.id),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A retry is answered even when the queue has filled up since.
    assert!(matches!(
        store.create_export_job(&retry, 1).await.unwrap(),
        ExportJobCreation::Replayed(job) if job.id == first.id
    ));
    assert_eq!(ids(&store, &prod).await, [1]);

    assert_eq!(
        store.export_job_by_idempotency_key(&prod, "key-1").await.unwrap(),
        Some((first.clone(), "aaa".to_owned()))
    );
    assert_eq!(store.export_job_by_idempotency_key(&prod, "key-2").await.unwrap(), None);
    assert_eq!(store.export_job_by_idempotency_key(&dev, "key-1").await.unwrap(), None);
    // Keys belong to a sandbox: the same key elsewhere creates a job there.
    let elsewhere = store
        .create_export_job(&new_export_job(&dev, &dev_target, 13, Some(("key-1", "bbb"))), 100)
        .await
        .unwrap();
    assert!(matches!(elsewhere, ExportJobCreation::Created(job) if job.id == 1 && job.tenant == dev));
}

pub(crate) async fn creation_refuses_a_full_queue_and_a_gone_dataset(store: MetaStore) {
    let [prod, _, other_org] = three_tenants(&store).await;
    let target = stored_dataset(&store, &prod, "target", 1).await.id;
    let other_target = stored_dataset(&store, &other_org, "target", 1).await.id;
    created_export_job(&store, &new_export_job(&prod, &target, 10, None)).await;
    created_export_job(&store, &new_export_job(&other_org, &other_target, 11, None)).await;

    let refused = new_export_job(&prod, &target, 12, None);
    match store.create_export_job(&refused, 2).await.unwrap() {
        ExportJobCreation::QueueFull { queued } => assert_eq!(queued, 2, "NEW jobs of every tenant count"),
        other => panic!("expected a full queue, got {other:?}"),
    }
    assert_eq!(ids(&store, &prod).await, [1]);
    assert_eq!(
        store.get_batch(&prod, &refused.batches[0].batch_id).await.unwrap(),
        None
    );
    assert!(matches!(
        store.create_export_job(&refused, 3).await.unwrap(),
        ExportJobCreation::Created(job) if job.id == 2
    ));

    let gone = new_export_job(&prod, &DatasetId::generate(), 13, None);
    assert!(matches!(
        store.create_export_job(&gone, 100).await.unwrap(),
        ExportJobCreation::DatasetGone
    ));
    // Another tenant's dataset is gone too, as far as this tenant can tell.
    let foreign = new_export_job(&prod, &other_target, 14, None);
    assert!(matches!(
        store.create_export_job(&foreign, 100).await.unwrap(),
        ExportJobCreation::DatasetGone
    ));
    assert_eq!(store.get_batch(&prod, &gone.batches[0].batch_id).await.unwrap(), None);
    assert_eq!(ids(&store, &prod).await, [1, 2]);
}

pub(crate) async fn jobs_are_read_back_as_created(store: MetaStore) {
    let t = with_prod(&store).await;
    let target = stored_dataset(&store, &t, "target", 1).await;
    let new = new_export_job(&t, &target.id, 10, Some(("key", "digest")));
    let ExportJobCreation::Created(job) = store.create_export_job(&new, 100).await.unwrap() else {
        panic!("created");
    };
    let expected = ExportJob {
        id: 1,
        tenant: t.clone(),
        status: ExportJobStatus::New,
        request_id: new.request_id.clone(),
        request: new.request.clone(),
        spec: new.spec.clone(),
        batches: new.batches.clone(),
        metrics: ExportJobMetrics::started_at(10),
        progress: None,
        errors: Vec::new(),
        cancel_requested: false,
        created: 10,
        updated: 10,
    };
    assert_eq!(job, expected);
    assert_eq!(store.export_job(&t, 1).await.unwrap(), Some(expected));
    assert_eq!(store.export_job(&t, 2).await.unwrap(), None);

    // Its batch waits, `loading`, as an export batch (no input format), the dataset's last.
    let batch = store.get_batch(&t, &new.batches[0].batch_id).await.unwrap().unwrap();
    assert_eq!(
        (
            batch.status,
            batch.is_ingestion(),
            batch.dataset_id.clone(),
            batch.created
        ),
        (BatchStatus::Loading, false, target.id.clone(), 10)
    );
    let dataset = store.get_dataset(&t, &target.id).await.unwrap().unwrap();
    assert_eq!(dataset.last_batch_id, Some(batch.id));

    let with_status = |status| ExportJobListing {
        status: Some(status),
        ..everything()
    };
    assert_eq!(
        store
            .list_export_jobs(&t, &with_status(ExportJobStatus::New))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_export_jobs(&t, &with_status(ExportJobStatus::Succeeded))
            .await
            .unwrap(),
        []
    );
    assert_eq!(ids(&store, &tenant(ORG_B, "prod")).await, Vec::<i64>::new());
}
