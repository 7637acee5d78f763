//! Datasets and batches: what is inserted reads back field for field, patches change only what
//! they name, a dataset knows its last batch, and batch transitions are compare-and-set.

use dossier_model::catalog::{BatchStatus, DatasetPatch};
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::listing::{Direction, ListQuery};
use dossier_model::schema::PROFILE_UNION_SCHEMA_ID;

use super::fixtures::{
    batch, committed_batch, dataset, dataset_on, new_export_job, profile_enabled_tags, stored_dataset, success,
    with_prod,
};
use crate::meta::{BatchFilter, BatchUpload, DatasetDeletion, DatasetFilter, ExportJobCreation, FileKind, MetaStore};

pub(crate) fn by_created(limit: u32, start: u64) -> ListQuery {
    ListQuery {
        limit,
        start,
        order_by: ("created".into(), Direction::Asc),
        properties: None,
    }
}

pub(crate) async fn datasets_round_trip_and_update(store: MetaStore) {
    let t = with_prod(&store).await;
    let crm = stored_dataset(&store, &t, "crm", 10).await;
    let other = stored_dataset(&store, &t, "other", 11).await;
    assert_eq!(store.get_dataset(&t, &crm.id).await.unwrap(), Some(crm.clone()));

    let rename = DatasetPatch {
        name: Some("renamed".into()),
        ..DatasetPatch::default()
    };
    let renamed = store
        .update_dataset(&t, &crm.id, &rename, 20)
        .await
        .unwrap()
        .expect("the dataset exists");
    assert_eq!(
        (
            renamed.name.as_str(),
            &renamed.description,
            &renamed.tags,
            renamed.created,
            renamed.updated
        ),
        ("renamed", &crm.description, &crm.tags, 10, 20),
        "a patch changes only what it names"
    );
    let retag = DatasetPatch {
        tags: Some(profile_enabled_tags()),
        ..DatasetPatch::default()
    };
    let retagged = store.update_dataset(&t, &crm.id, &retag, 30).await.unwrap().unwrap();
    assert_eq!(
        (retagged.name.as_str(), &retagged.tags),
        ("renamed", &profile_enabled_tags())
    );
    assert_eq!(store.get_dataset(&t, &crm.id).await.unwrap(), Some(retagged.clone()));
    assert_eq!(
        store
            .update_dataset(&t, &DatasetId::generate(), &rename, 40)
            .await
            .unwrap(),
        None
    );

    let named = |name: &str| DatasetFilter {
        name: Some(name.into()),
    };
    let listed = store
        .list_datasets(&t, &by_created(10, 0), &named("renamed"))
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&retagged));
    let all = store
        .list_datasets(&t, &by_created(10, 0), &DatasetFilter::default())
        .await
        .unwrap();
    assert_eq!(all, [retagged, other]);
    assert_eq!(
        store
            .list_datasets(&t, &by_created(10, 0), &named("crm"))
            .await
            .unwrap(),
        []
    );
}

pub(crate) async fn deleting_a_dataset_removes_its_batches(store: MetaStore) {
    let t = with_prod(&store).await;
    let doomed = stored_dataset(&store, &t, "doomed", 10).await;
    let kept = stored_dataset(&store, &t, "kept", 11).await;
    let doomed_batch = batch(&doomed, BatchStatus::Loading, 12);
    let kept_batch = batch(&kept, BatchStatus::Loading, 13);
    store.insert_batch(&doomed_batch).await.unwrap();
    store.insert_batch(&kept_batch).await.unwrap();
    let upload = BatchUpload {
        name: "a.json".into(),
        path: "staging/a".into(),
        size: 1,
    };
    store.record_upload(&t, &doomed_batch.id, &upload, 14).await.unwrap();
    let committed = committed_batch(&store, &doomed, 15, 16).await;
    let file = store
        .batch_files(&t, &committed.id, FileKind::Data)
        .await
        .unwrap()
        .remove(0);

    assert_eq!(
        store.delete_dataset(&t, &doomed.id).await.unwrap(),
        DatasetDeletion::Deleted
    );
    assert_eq!(store.get_dataset(&t, &doomed.id).await.unwrap(), None);
    assert_eq!(store.get_batch(&t, &doomed_batch.id).await.unwrap(), None);
    assert_eq!(store.get_batch(&t, &committed.id).await.unwrap(), None);
    // The Data Access API must not find the files of a deleted dataset, nor COMPLETE its uploads.
    assert_eq!(store.batch_file(&t, &file.file_id).await.unwrap(), None);
    assert_eq!(store.batch_files(&t, &committed.id, FileKind::Data).await.unwrap(), []);
    assert_eq!(store.batch_uploads(&t, &doomed_batch.id).await.unwrap(), []);
    assert_eq!(store.committed_batches(&t, &doomed.id).await.unwrap(), []);
    assert_eq!(
        store.delete_dataset(&t, &doomed.id).await.unwrap(),
        DatasetDeletion::NotFound
    );

    assert!(store.get_dataset(&t, &kept.id).await.unwrap().is_some());
    assert_eq!(
        store.get_batch(&t, &kept_batch.id).await.unwrap().map(|b| b.id),
        Some(kept_batch.id)
    );
}

pub(crate) async fn a_dataset_written_to_by_an_export_cannot_be_deleted(store: MetaStore) {
    let t = with_prod(&store).await;
    let target = stored_dataset(&store, &t, "export target", 10).await;
    let ExportJobCreation::Created(job) = store
        .create_export_job(&new_export_job(&t, &target.id, 20, None), 10)
        .await
        .unwrap()
    else {
        panic!("the job is created");
    };
    assert_eq!(
        store.delete_dataset(&t, &target.id).await.unwrap(),
        DatasetDeletion::ExportInProgress { job_id: job.id }
    );
    assert!(
        store.get_dataset(&t, &target.id).await.unwrap().is_some(),
        "nothing deleted"
    );
    assert!(store.get_batch(&t, &job.batches[0].batch_id).await.unwrap().is_some());
}

pub(crate) async fn batches_round_trip_and_track_their_dataset(store: MetaStore) {
    let t = with_prod(&store).await;
    let crm = stored_dataset(&store, &t, "crm", 10).await;
    let first = batch(&crm, BatchStatus::Loading, 20);
    store.insert_batch(&first).await.unwrap();
    assert_eq!(store.get_batch(&t, &first.id).await.unwrap(), Some(first.clone()));
    let last = |store: MetaStore| {
        let (t, id) = (t.clone(), crm.id.clone());
        async move {
            let d = store.get_dataset(&t, &id).await.unwrap().unwrap();
            (d.last_batch_id, d.last_batch_status)
        }
    };
    assert_eq!(
        last(store.clone()).await,
        (Some(first.id.clone()), Some(BatchStatus::Loading))
    );

    let second = batch(&crm, BatchStatus::Loading, 30);
    store.insert_batch(&second).await.unwrap();
    assert_eq!(
        last(store.clone()).await,
        (Some(second.id.clone()), Some(BatchStatus::Loading))
    );
    store
        .transition_batch(&t, &second.id, &[BatchStatus::Loading], BatchStatus::Processing, 31)
        .await
        .unwrap();
    assert_eq!(
        last(store.clone()).await,
        (Some(second.id.clone()), Some(BatchStatus::Processing))
    );
    // A change to an older batch does not touch the last batch's status.
    store
        .transition_batch(&t, &first.id, &[BatchStatus::Loading], BatchStatus::Aborted, 32)
        .await
        .unwrap();
    assert_eq!(
        last(store.clone()).await,
        (Some(second.id.clone()), Some(BatchStatus::Processing))
    );
    assert!(
        store
            .commit_batch(&t, &second.id, &success(&second, 40, &["a.parquet"]))
            .await
            .unwrap()
    );
    assert_eq!(last(store.clone()).await, (Some(second.id), Some(BatchStatus::Success)));
}

pub(crate) async fn batches_are_listed_by_dataset_and_status(store: MetaStore) {
    let t = with_prod(&store).await;
    let crm = stored_dataset(&store, &t, "crm", 1).await;
    let web = stored_dataset(&store, &t, "web", 2).await;
    let crm_loading = batch(&crm, BatchStatus::Loading, 10);
    let web_loading = batch(&web, BatchStatus::Loading, 11);
    let crm_failed = batch(&crm, BatchStatus::Failed, 12);
    let crm_loading_later = batch(&crm, BatchStatus::Loading, 12);
    for b in [&crm_loading, &web_loading, &crm_failed, &crm_loading_later] {
        store.insert_batch(b).await.unwrap();
    }
    let ids = |batches: Vec<dossier_model::catalog::Batch>| batches.into_iter().map(|b| b.id).collect::<Vec<BatchId>>();
    let filter = |dataset: Option<&DatasetId>, status: Option<BatchStatus>| BatchFilter {
        dataset_id: dataset.cloned(),
        status,
    };

    let all = store
        .list_batches(&t, &by_created(10, 0), &filter(None, None))
        .await
        .unwrap();
    assert_eq!(
        ids(all),
        [&crm_loading, &web_loading, &crm_failed, &crm_loading_later].map(|b| b.id.clone()),
        "by created, ties in insertion order"
    );
    let crm_only = store
        .list_batches(&t, &by_created(10, 0), &filter(Some(&crm.id), None))
        .await
        .unwrap();
    assert_eq!(
        ids(crm_only),
        [&crm_loading, &crm_failed, &crm_loading_later].map(|b| b.id.clone())
    );
    let crm_loading_only = store
        .list_batches(
            &t,
            &by_created(10, 0),
            &filter(Some(&crm.id), Some(BatchStatus::Loading)),
        )
        .await
        .unwrap();
    assert_eq!(
        ids(crm_loading_only),
        [&crm_loading, &crm_loading_later].map(|b| b.id.clone())
    );
    let failed = store
        .list_batches(&t, &by_created(10, 0), &filter(None, Some(BatchStatus::Failed)))
        .await
        .unwrap();
    assert_eq!(ids(failed), std::slice::from_ref(&crm_failed.id));
    let none = store
        .list_batches(
            &t,
            &by_created(10, 0),
            &filter(Some(&web.id), Some(BatchStatus::Success)),
        )
        .await
        .unwrap();
    assert_eq!(none, []);
}

pub(crate) async fn transitions_are_compare_and_set(store: MetaStore) {
    let t = with_prod(&store).await;
    let crm = stored_dataset(&store, &t, "crm", 1).await;
    let loading = batch(&crm, BatchStatus::Loading, 10);
    store.insert_batch(&loading).await.unwrap();

    let (started, changed) = store
        .transition_batch(&t, &loading.id, &[BatchStatus::Loading], BatchStatus::Processing, 50)
        .await
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!(
        (started.status, started.started, started.updated),
        (BatchStatus::Processing, Some(50), 50)
    );
    let (unchanged, changed) = store
        .transition_batch(&t, &loading.id, &[BatchStatus::Loading], BatchStatus::Processing, 55)
        .await
        .unwrap()
        .unwrap();
    assert!(!changed, "a batch no longer in `from` is not moved");
    assert_eq!(unchanged, started, "and is returned as it is");
    let (aborted, changed) = store
        .transition_batch(
            &t,
            &loading.id,
            &[BatchStatus::Loading, BatchStatus::Processing],
            BatchStatus::Aborted,
            60,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!(
        (aborted.status, aborted.started, aborted.updated),
        (BatchStatus::Aborted, Some(50), 60)
    );
    assert_eq!(
        store
            .transition_batch(
                &t,
                &BatchId::generate(),
                &[BatchStatus::Loading],
                BatchStatus::Processing,
                70
            )
            .await
            .unwrap(),
        None
    );

    // Racing COMPLETEs: exactly one moves the batch.
    let raced = batch(&crm, BatchStatus::Loading, 80);
    store.insert_batch(&raced).await.unwrap();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let (store, t, id) = (store.clone(), t.clone(), raced.id.clone());
            tokio::spawn(async move {
                let (_, changed) = store
                    .transition_batch(&t, &id, &[BatchStatus::Loading], BatchStatus::Processing, 90 + i)
                    .await
                    .unwrap()
                    .unwrap();
                changed
            })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap());
    }
    assert_eq!(winners, 1);
}

pub(crate) async fn profile_enabled_datasets_oldest_first(store: MetaStore) {
    let t = with_prod(&store).await;
    let on = |name: &str, created| dataset_on(&t, name, PROFILE_UNION_SCHEMA_ID, true, created);
    let newest = on("newest", 30);
    let disabled = dataset(&t, "disabled", 10);
    let older = on("older", 20);
    let same_time = on("same time", 20);
    for d in [&newest, &disabled, &older, &same_time] {
        store.insert_dataset(d).await.unwrap();
    }
    let enabled = store.profile_enabled_datasets(&t).await.unwrap();
    assert_eq!(
        enabled,
        [older, same_time, newest],
        "oldest first, ties in insertion order"
    );
}
