//! Batch commits, their files and staged uploads: files become readable only with a `success`
//! or `failed` commit of a `processing` batch, committed batches come back in commit order with
//! a sequence number, and an upload is recorded only while its batch is `loading`.

use dossier_model::catalog::{BatchError, BatchStatus};
use dossier_model::ids::BatchId;

use super::fixtures::{
    ORG_A, ORG_B, batch, committed_batch, data_file, org, processing_batch, stored_dataset, success, tenant, with_prod,
};
use crate::meta::{BatchFile, BatchOutcome, BatchUpload, FileKind, MetaStore, UploadRecording};

pub(crate) async fn a_commit_makes_files_visible_with_the_outcome(store: MetaStore) {
    let t = with_prod(&store).await;
    let crm = stored_dataset(&store, &t, "crm", 1).await;
    let batch = processing_batch(&store, &crm, 10).await;
    assert_eq!(store.batch_files(&t, &batch.id, FileKind::Data).await.unwrap(), []);
    assert_eq!(store.committed_batches(&t, &crm.id).await.unwrap(), []);

    let mut outcome = success(&batch, 20, &["part-00001.parquet", "part-00000.parquet"]);
    let rejected = BatchFile {
        kind: FileKind::Failed,
        ..data_file(&batch, "errors.json", 20)
    };
    outcome.files.push(rejected.clone());
    outcome.errors = vec![BatchError {
        code: "ROW-1".into(),
        description: "one row skipped".into(),
    }];
    assert!(store.commit_batch(&t, &batch.id, &outcome).await.unwrap());

    let data = store.batch_files(&t, &batch.id, FileKind::Data).await.unwrap();
    assert_eq!(data, [outcome.files[1].clone(), outcome.files[0].clone()], "by name");
    assert_eq!(
        store.batch_files(&t, &batch.id, FileKind::Failed).await.unwrap(),
        std::slice::from_ref(&rejected)
    );
    assert_eq!(
        store.batch_file(&t, &data[0].file_id).await.unwrap(),
        Some(data[0].clone())
    );
    assert_eq!(store.batch_file(&t, &rejected.file_id).await.unwrap(), Some(rejected));
    assert_eq!(store.batch_file(&t, "no-such-file").await.unwrap(), None);

    let stored = store.get_batch(&t, &batch.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.status,
            stored.completed,
            stored.updated,
            stored.records_read,
            stored.record_count,
            stored.size,
            &stored.errors
        ),
        (
            BatchStatus::Success,
            Some(20),
            20,
            Some(20),
            Some(20),
            Some(200),
            &outcome.errors
        )
    );
    assert_eq!(store.committed_batches(&t, &crm.id).await.unwrap(), [stored]);
}

pub(crate) async fn only_a_processing_batch_commits(store: MetaStore) {
    let t = with_prod(&store).await;
    let crm = stored_dataset(&store, &t, "crm", 1).await;

    let loading = batch(&crm, BatchStatus::Loading, 10);
    store.insert_batch(&loading).await.unwrap();
    assert!(
        !store
            .commit_batch(&t, &loading.id, &success(&loading, 20, &["a.parquet"]))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_batch(&t, &loading.id).await.unwrap().unwrap().status,
        BatchStatus::Loading
    );
    assert_eq!(store.batch_files(&t, &loading.id, FileKind::Data).await.unwrap(), []);

    // Aborted while it was processing: the ingestion's commit loses.
    let aborted = processing_batch(&store, &crm, 30).await;
    store
        .transition_batch(&t, &aborted.id, &[BatchStatus::Processing], BatchStatus::Aborted, 31)
        .await
        .unwrap();
    assert!(
        !store
            .commit_batch(&t, &aborted.id, &success(&aborted, 32, &["a.parquet"]))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_batch(&t, &aborted.id).await.unwrap().unwrap().status,
        BatchStatus::Aborted
    );
    assert_eq!(store.batch_files(&t, &aborted.id, FileKind::Data).await.unwrap(), []);

    // A second commit of a committed batch changes nothing.
    let done = committed_batch(&store, &crm, 40, 41).await;
    let again = success(&done, 50, &["b.parquet"]);
    assert!(!store.commit_batch(&t, &done.id, &again).await.unwrap());
    let files = store.batch_files(&t, &done.id, FileKind::Data).await.unwrap();
    assert_eq!(
        files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["part-00000.parquet"]
    );

    // A failed outcome commits, but the batch is not a committed (readable) one.
    let failing = processing_batch(&store, &crm, 60).await;
    let failed = BatchOutcome {
        status: BatchStatus::Failed,
        files: Vec::new(),
        errors: vec![BatchError {
            code: "INGEST-1".into(),
            description: "bad file".into(),
        }],
        ..success(&failing, 61, &[])
    };
    assert!(store.commit_batch(&t, &failing.id, &failed).await.unwrap());
    let stored = store.get_batch(&t, &failing.id).await.unwrap().unwrap();
    assert_eq!((stored.status, &stored.errors), (BatchStatus::Failed, &failed.errors));
    let committed: Vec<BatchId> = store
        .committed_batches(&t, &crm.id)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(committed, [done.id]);
}

pub(crate) async fn committed_batches_are_in_commit_order(store: MetaStore) {
    let t = with_prod(&store).await;
    let crm = stored_dataset(&store, &t, "crm", 1).await;
    let other = stored_dataset(&store, &t, "other", 2).await;
    let late = committed_batch(&store, &crm, 1, 30).await;
    let early = committed_batch(&store, &crm, 2, 10).await;
    // Committed in the same millisecond as `early`, created after it.
    let tied = committed_batch(&store, &crm, 3, 10).await;
    processing_batch(&store, &crm, 4).await;
    committed_batch(&store, &other, 5, 5).await;

    let in_order = store.committed_batches_in_order(&t, &crm.id).await.unwrap();
    let ids: Vec<&BatchId> = in_order.iter().map(|(b, _)| &b.id).collect();
    assert_eq!(ids, [&early.id, &tied.id, &late.id], "by commit time, ties by creation");
    assert_eq!(in_order[0].0, early, "the batches as stored");
    let seqs: Vec<i64> = in_order.iter().map(|(_, seq)| *seq).collect();
    assert!(seqs[0] < seqs[1], "the tie is ordered by the sequence number: {seqs:?}");
    assert!(
        seqs[2] != seqs[0] && seqs[2] != seqs[1],
        "sequence numbers are distinct: {seqs:?}"
    );
    assert_eq!(
        store.committed_batches(&t, &crm.id).await.unwrap(),
        in_order.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>(),
        "both listings agree"
    );

    // Numbers are stable: a later commit does not renumber earlier batches.
    committed_batch(&store, &crm, 6, 10).await;
    let later = store.committed_batches_in_order(&t, &crm.id).await.unwrap();
    for (batch, seq) in &in_order {
        let found = later.iter().find(|(b, _)| b.id == batch.id).map(|(_, s)| *s);
        assert_eq!(found, Some(*seq));
    }
    assert_eq!(later.len(), 4);
    assert_eq!(later[2].0.completed, Some(10), "the new tie comes after the older ones");
    assert!(later[2].1 > later[1].1);
}

pub(crate) async fn batches_in_status_span_every_tenant(store: MetaStore) {
    store.ensure_org(&org(ORG_A)).await.unwrap();
    store.ensure_org(&org(ORG_B)).await.unwrap();
    let a = stored_dataset(&store, &tenant(ORG_A, "prod"), "a", 1).await;
    let b = stored_dataset(&store, &tenant(ORG_B, "prod"), "b", 1).await;
    let a_loading = batch(&a, BatchStatus::Loading, 10);
    store.insert_batch(&a_loading).await.unwrap();
    let b_processing = processing_batch(&store, &b, 5).await;
    let a_processing = processing_batch(&store, &a, 20).await;
    committed_batch(&store, &a, 30, 31).await;

    let ids = |batches: Vec<dossier_model::catalog::Batch>| batches.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.batches_in_status(&[BatchStatus::Processing]).await.unwrap()),
        [b_processing.id.clone(), a_processing.id.clone()],
        "every tenant's, oldest first"
    );
    assert_eq!(
        ids(store
            .batches_in_status(&[BatchStatus::Loading, BatchStatus::Processing])
            .await
            .unwrap()),
        [b_processing.id, a_loading.id, a_processing.id]
    );
    assert_eq!(store.batches_in_status(&[BatchStatus::Aborted]).await.unwrap(), []);
}

pub(crate) async fn an_upload_is_recorded_only_while_loading(store: MetaStore) {
    let t = with_prod(&store).await;
    let crm = stored_dataset(&store, &t, "crm", 1).await;
    let loading = batch(&crm, BatchStatus::Loading, 10);
    store.insert_batch(&loading).await.unwrap();
    let upload = |name: &str, path: &str, size| BatchUpload {
        name: name.into(),
        path: path.into(),
        size,
    };

    let b = upload("b.json", "staging/b-1", 5);
    let a = upload("a.json", "staging/a-1", 7);
    assert_eq!(
        store.record_upload(&t, &loading.id, &b, 11).await.unwrap(),
        UploadRecording::Recorded { replaced: None }
    );
    assert_eq!(
        store.record_upload(&t, &loading.id, &a, 12).await.unwrap(),
        UploadRecording::Recorded { replaced: None }
    );
    let b_again = upload("b.json", "staging/b-2", 9);
    assert_eq!(
        store.record_upload(&t, &loading.id, &b_again, 13).await.unwrap(),
        UploadRecording::Recorded {
            replaced: Some("staging/b-1".into())
        },
        "a second upload of a name replaces the first and names its bytes"
    );
    assert_eq!(
        store.batch_uploads(&t, &loading.id).await.unwrap(),
        [a.clone(), b_again.clone()]
    );

    store
        .transition_batch(&t, &loading.id, &[BatchStatus::Loading], BatchStatus::Processing, 14)
        .await
        .unwrap();
    assert_eq!(
        store
            .record_upload(&t, &loading.id, &upload("c.json", "staging/c", 1), 15)
            .await
            .unwrap(),
        UploadRecording::NotLoading(BatchStatus::Processing)
    );
    assert_eq!(
        store.batch_uploads(&t, &loading.id).await.unwrap(),
        [a, b_again],
        "a refused upload is not recorded"
    );
    assert_eq!(
        store
            .record_upload(&t, &BatchId::generate(), &upload("d.json", "staging/d", 1), 16)
            .await
            .unwrap(),
        UploadRecording::NoBatch
    );
    let elsewhere = tenant(ORG_B, "prod");
    assert_eq!(
        store
            .record_upload(&elsewhere, &loading.id, &upload("e.json", "staging/e", 1), 17)
            .await
            .unwrap(),
        UploadRecording::NoBatch
    );
    assert_eq!(store.batch_uploads(&elsewhere, &loading.id).await.unwrap(), []);
}
