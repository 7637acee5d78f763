//! The lake on S3, against a real SeaweedFS (`dossier_testkit::s3`): streaming writes (multipart
//! when large), staging, promotion without renames, the sweep, conditional puts, deletes, and
//! what opening says when the bucket or the credentials are wrong.

use bytes::Bytes;
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::{Lake, S3LakeError, WriteStreamError};
use dossier_testkit::s3::S3Bucket;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;

fn tenant(sandbox: &str) -> Tenant {
    Tenant {
        org: OrgId::parse("1BD6382559DF0C130A49422D@AdobeOrg").unwrap(),
        sandbox: SandboxName::parse(sandbox).unwrap(),
    }
}

/// What `AmazonS3Builder::from_env` builds in a process whose environment is `bucket.env()`.
fn settings(bucket: &S3Bucket) -> AmazonS3Builder {
    bucket
        .env()
        .into_iter()
        .fold(AmazonS3Builder::new(), |builder, (key, value)| {
            builder.with_config(key.to_ascii_lowercase().parse().unwrap(), value)
        })
        .with_bucket_name(&bucket.name)
}

async fn lake_in(bucket: &S3Bucket, prefix: &str) -> Lake {
    Lake::s3(settings(bucket), prefix).await.expect("the S3 lake opens")
}

async fn read(lake: &Lake, location: &ObjectPath) -> Bytes {
    lake.store().get(location).await.unwrap().bytes().await.unwrap()
}

#[tokio::test]
async fn a_large_stream_is_written_in_parts_and_an_oversized_one_leaves_nothing() {
    let Some(bucket) = dossier_testkit::s3::bucket() else {
        return;
    };
    let lake = lake_in(&bucket, "lake").await;
    let (t, batch) = (tenant("prod"), BatchId::generate());
    // 25 MiB: more than object_store's 10 MiB buffer, so it goes up as a multipart upload.
    let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let chunks = (0..25u8).map(|n| {
        let mut part = chunk.clone();
        part[0] = n;
        Ok::<_, String>(Bytes::from(part))
    });
    let location = Lake::upload_prefix(&t, &batch).join("big.json");
    let written = lake
        .write_stream(&location, futures::stream::iter(chunks), 64 << 20)
        .await
        .unwrap();
    assert_eq!(written, 25 << 20);
    let stored = read(&lake, &location).await;
    assert_eq!(stored.len(), 25 << 20);
    for n in 0..25usize {
        assert_eq!(stored[n << 20], n as u8, "part {n} in its place");
        assert_eq!(stored[(n << 20) + 1..(n + 1) << 20], chunk[1..]);
    }
    // The raw bucket shows the object under the lake's prefix.
    let raw = settings(&bucket).build().unwrap();
    let under_prefix = ObjectPath::from(format!("lake/{location}"));
    assert_eq!(raw.head(&under_prefix).await.unwrap().size, 25 << 20);

    let too_large = Lake::upload_prefix(&t, &batch).join("too-large.json");
    let chunks = (0..15).map(|_| Ok::<_, String>(Bytes::from(chunk.clone())));
    assert!(matches!(
        lake.write_stream(&too_large, futures::stream::iter(chunks), 14 << 20).await,
        Err(WriteStreamError::TooLarge { max_bytes }) if max_bytes == 14 << 20
    ));
    assert!(matches!(
        lake.store().head(&too_large).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn staged_files_are_promoted_by_copy_and_the_sweep_removes_only_staged_ones() {
    let Some(bucket) = dossier_testkit::s3::bucket() else {
        return;
    };
    let lake = lake_in(&bucket, "lake/one").await;
    // A second lake in the same bucket: nothing done to the first may touch it.
    let neighbour = lake_in(&bucket, "lake/two").await;
    let (t, ds, batch) = (tenant("prod"), DatasetId::generate(), BatchId::generate());
    for name in ["part-0.parquet", "failed/errors.json"] {
        let location = name.split('/').fold(Lake::output_prefix(&t, &batch), ObjectPath::join);
        lake.put(&location, Bytes::from(name.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let orphan = BatchId::generate();
    let neighbour_staged = Lake::staging_prefix(&t, &orphan).join("kept.parquet");
    neighbour
        .put(&neighbour_staged, Bytes::from_static(b"n"))
        .await
        .unwrap();

    assert_eq!(lake.promote_staged(&t, &ds, &batch).await.unwrap(), 2);
    let promoted: Vec<String> = lake
        .list(&Lake::batch_prefix(&t, &ds, &batch))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.location.to_string())
        .collect();
    let folder = Lake::batch_prefix(&t, &ds, &batch);
    assert_eq!(
        promoted,
        [
            format!("{folder}/failed/errors.json"),
            format!("{folder}/part-0.parquet")
        ]
    );
    assert_eq!(
        read(&lake, &folder.clone().join("part-0.parquet")).await,
        Bytes::from_static(b"part-0.parquet")
    );
    assert!(lake.list(&Lake::staging_prefix(&t, &batch)).await.unwrap().is_empty());

    // Left by writers that never finished: one batch still open, one gone, in two sandboxes.
    let open = BatchId::generate();
    lake.put(
        &Lake::upload_prefix(&t, &open).join("a.json"),
        Bytes::from_static(b"{}"),
    )
    .await
    .unwrap();
    let dev = tenant("dev");
    lake.put(
        &Lake::output_prefix(&dev, &orphan).join("b.parquet"),
        Bytes::from_static(b"y"),
    )
    .await
    .unwrap();
    lake.put(
        &Lake::staging_prefix(&t, &orphan).join("c.parquet"),
        Bytes::from_static(b"z"),
    )
    .await
    .unwrap();
    assert_eq!(
        lake.sweep_staging(|b| b == open.as_str(), std::time::SystemTime::now())
            .await
            .unwrap(),
        2
    );
    assert_eq!(lake.list(&Lake::staging_prefix(&t, &open)).await.unwrap().len(), 1);
    assert!(
        lake.list(&Lake::staging_prefix(&dev, &orphan))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(lake.list(&Lake::staging_prefix(&t, &orphan)).await.unwrap().is_empty());
    assert_eq!(lake.list(&folder).await.unwrap().len(), 2, "committed files stay");
    assert_eq!(
        read(&neighbour, &neighbour_staged).await,
        Bytes::from_static(b"n"),
        "the other lake's staging is not this lake's to sweep"
    );
}

#[tokio::test]
async fn a_conditional_put_refuses_the_second_writer() {
    let Some(bucket) = dossier_testkit::s3::bucket() else {
        return;
    };
    let lake = lake_in(&bucket, "").await;
    let location = Lake::identity_graph_prefix(&tenant("prod")).join("v1.parquet");
    assert!(
        lake.put_if_absent(&location, Bytes::from_static(b"first"))
            .await
            .unwrap()
    );
    assert!(
        !lake
            .put_if_absent(&location, Bytes::from_static(b"second"))
            .await
            .unwrap()
    );
    assert_eq!(read(&lake, &location).await, Bytes::from_static(b"first"));

    // Two writers at once: exactly one wins, and the object is the winner's.
    let raced = Lake::identity_graph_prefix(&tenant("prod")).join("v2.parquet");
    let (a, b) = tokio::join!(
        lake.put_if_absent(&raced, Bytes::from_static(b"a")),
        lake.put_if_absent(&raced, Bytes::from_static(b"b")),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a ^ b, "one writer wins: a={a} b={b}");
    let winner: &[u8] = if a { b"a" } else { b"b" };
    assert_eq!(read(&lake, &raced).await, Bytes::from_static(winner));
}

#[tokio::test]
async fn deletes_remove_everything_under_a_prefix_and_nothing_else() {
    let Some(bucket) = dossier_testkit::s3::bucket() else {
        return;
    };
    let lake = lake_in(&bucket, "p").await;
    let (t, ds, other, batch) = (
        tenant("prod"),
        DatasetId::generate(),
        DatasetId::generate(),
        BatchId::generate(),
    );
    for n in 0..3 {
        lake.put(
            &Lake::batch_prefix(&t, &ds, &batch).join(format!("part-{n}.parquet")),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    }
    lake.put(
        &Lake::batch_prefix(&t, &other, &batch).join("kept.parquet"),
        Bytes::from_static(b"x"),
    )
    .await
    .unwrap();
    assert_eq!(lake.delete_prefix(&Lake::dataset_prefix(&t, &ds)).await.unwrap(), 3);
    assert!(lake.list(&Lake::dataset_prefix(&t, &ds)).await.unwrap().is_empty());
    assert_eq!(lake.list(&Lake::dataset_prefix(&t, &other)).await.unwrap().len(), 1);

    // One upload's folder, then the whole staging of a batch.
    let first = Lake::new_upload_path(&t, &batch, "a.json");
    let second = Lake::new_upload_path(&t, &batch, "a.json");
    for upload in [&first, &second] {
        lake.put(upload, Bytes::from_static(b"{}")).await.unwrap();
    }
    assert_eq!(lake.remove_upload(&first).await.unwrap(), 1);
    assert_eq!(lake.list(&Lake::upload_prefix(&t, &batch)).await.unwrap().len(), 1);
    assert_eq!(lake.remove_staging(&t, &batch).await.unwrap(), 1);
    assert!(lake.list(&Lake::staging_prefix(&t, &batch)).await.unwrap().is_empty());
}

#[tokio::test]
async fn opening_names_a_missing_bucket_and_refused_credentials() {
    let Some(bucket) = dossier_testkit::s3::bucket() else {
        return;
    };
    let missing = settings(&bucket).with_bucket_name("dossier-no-such-bucket");
    match Lake::s3(missing, "lake").await {
        Err(S3LakeError::NoSuchBucket { bucket, endpoint }) => {
            assert_eq!(bucket, "dossier-no-such-bucket");
            assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        }
        other => panic!("expected NoSuchBucket, got {other:?}"),
    }
    let wrong_secret = settings(&bucket).with_secret_access_key("not-the-secret");
    assert!(
        matches!(Lake::s3(wrong_secret, "lake").await, Err(S3LakeError::Denied { .. })),
        "a wrong secret is refused at open"
    );
    let unsigned = settings(&bucket).with_skip_signature(true);
    assert!(
        matches!(Lake::s3(unsigned, "lake").await, Err(S3LakeError::Denied { .. })),
        "no credentials at all are refused at open"
    );
}
