//! Identity graph versions: a version number is recorded once (the first writer wins), a
//! version covers the batches folded at or before it, pruning drops old rows but no fold, a
//! discarded version uncovers its batches, and one writer per sandbox holds the lock.

use std::time::Duration;

use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;

use super::fixtures::{ORG_A, committed_batch, org, sandbox, sorted, stored_dataset, tenant, with_prod};
use crate::meta::{IdentityGraphVersion, MetaStore};

fn version(n: i64) -> IdentityGraphVersion {
    IdentityGraphVersion {
        version: n,
        path: format!("graph/v{n}.parquet"),
        created: n * 10,
        nodes: n * 2,
        components: n,
    }
}

/// A prod tenant with `count` committed batches to fold.
async fn with_batches(store: &MetaStore, count: usize) -> (Tenant, Vec<BatchId>) {
    let t = with_prod(store).await;
    let crm = stored_dataset(store, &t, "crm", 1).await;
    let mut batches = Vec::new();
    for n in 0..count as i64 {
        batches.push(committed_batch(store, &crm, 10 + n, 20 + n).await.id);
    }
    (t, batches)
}

async fn covered(store: &MetaStore, t: &Tenant, at: i64) -> Vec<BatchId> {
    sorted(&store.identity_graph_covered_batches(t, at).await.unwrap())
}

pub(crate) async fn versions_record_once_and_cover_batches(store: MetaStore) {
    let (t, batches) = with_batches(&store, 3).await;
    assert_eq!(store.latest_identity_graph_version(&t).await.unwrap(), None);
    assert_eq!(store.identity_graph_versions(&t).await.unwrap(), []);

    assert!(
        store
            .record_identity_graph_version(&t, &version(1), &batches[..2])
            .await
            .unwrap()
    );
    assert!(
        store
            .record_identity_graph_version(&t, &version(2), &batches[2..])
            .await
            .unwrap()
    );
    let mut taken = version(2);
    taken.path = "graph/other.parquet".into();
    assert!(
        !store
            .record_identity_graph_version(&t, &taken, &batches[..1])
            .await
            .unwrap(),
        "a version number is written once"
    );
    assert_eq!(store.latest_identity_graph_version(&t).await.unwrap(), Some(version(2)));
    assert_eq!(
        store.identity_graph_versions(&t).await.unwrap(),
        [version(2), version(1)],
        "newest first"
    );
    assert_eq!(covered(&store, &t, 0).await, []);
    assert_eq!(covered(&store, &t, 1).await, sorted(&batches[..2]));
    assert_eq!(
        covered(&store, &t, 2).await,
        sorted(&batches),
        "the refused write covered nothing new"
    );

    // Two writers racing for the next number: one wins.
    let racers: Vec<_> = (0..2)
        .map(|n| {
            let (store, t) = (store.clone(), t.clone());
            tokio::spawn(async move {
                let mut next = version(3);
                next.path = format!("graph/v3-{n}.parquet");
                store.record_identity_graph_version(&t, &next, &[]).await.unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap());
    }
    assert_eq!(winners, 1);
    store.create_sandbox(&org(ORG_A), &sandbox("dev")).await.unwrap();
    assert_eq!(
        store
            .latest_identity_graph_version(&tenant(ORG_A, "dev"))
            .await
            .unwrap(),
        None
    );
}

pub(crate) async fn pruning_keeps_the_newest_and_every_fold(store: MetaStore) {
    let (t, batches) = with_batches(&store, 3).await;
    for (n, batch) in batches.iter().enumerate() {
        let folded = std::slice::from_ref(batch);
        assert!(
            store
                .record_identity_graph_version(&t, &version(n as i64 + 1), folded)
                .await
                .unwrap()
        );
    }
    assert_eq!(store.prune_identity_graph_versions(&t, 2).await.unwrap(), [version(1)]);
    assert_eq!(
        store.identity_graph_versions(&t).await.unwrap(),
        [version(3), version(2)]
    );
    assert_eq!(
        store.prune_identity_graph_versions(&t, 2).await.unwrap(),
        [],
        "nothing more to prune"
    );
    assert_eq!(store.prune_identity_graph_versions(&t, 1).await.unwrap(), [version(2)]);
    assert_eq!(store.latest_identity_graph_version(&t).await.unwrap(), Some(version(3)));
    assert_eq!(
        covered(&store, &t, 3).await,
        sorted(&batches),
        "folds of pruned versions stay covered"
    );
}

pub(crate) async fn discarding_uncovers_its_batches(store: MetaStore) {
    let (t, batches) = with_batches(&store, 2).await;
    store
        .record_identity_graph_version(&t, &version(1), &batches[..1])
        .await
        .unwrap();
    store
        .record_identity_graph_version(&t, &version(2), &batches[1..])
        .await
        .unwrap();
    assert!(store.discard_identity_graph_version(&t, 2).await.unwrap());
    assert!(
        !store.discard_identity_graph_version(&t, 2).await.unwrap(),
        "already gone"
    );
    assert!(!store.discard_identity_graph_version(&t, 9).await.unwrap());
    assert_eq!(store.latest_identity_graph_version(&t).await.unwrap(), Some(version(1)));
    assert_eq!(covered(&store, &t, 5).await, batches[..1].to_vec());

    // Folding again reuses the number and covers the batch once more; a batch folded again by
    // a newer version moves to it.
    assert!(
        store
            .record_identity_graph_version(&t, &version(2), &batches[1..])
            .await
            .unwrap()
    );
    assert_eq!(covered(&store, &t, 2).await, sorted(&batches));
    assert!(
        store
            .record_identity_graph_version(&t, &version(3), &batches[..1])
            .await
            .unwrap()
    );
    assert_eq!(
        covered(&store, &t, 2).await,
        batches[1..].to_vec(),
        "the refold moved to version 3"
    );
    assert_eq!(covered(&store, &t, 3).await, sorted(&batches));
}

pub(crate) async fn one_writer_per_sandbox(store: MetaStore) {
    let prod = with_prod(&store).await;
    store.create_sandbox(&prod.org, &sandbox("dev")).await.unwrap();
    let dev = tenant(ORG_A, "dev");
    let held = store.lock_identity_graph(&prod).await;
    let second = tokio::time::timeout(Duration::from_millis(100), store.lock_identity_graph(&prod)).await;
    assert!(second.is_err(), "a second writer of the sandbox waits");
    let other = tokio::time::timeout(Duration::from_secs(5), store.lock_identity_graph(&dev)).await;
    assert!(other.is_ok(), "another sandbox's writer does not wait");
    drop(other);

    // The waiting writer gets the lock once the first lets go.
    let waiter = {
        let (store, prod) = (store.clone(), prod.clone());
        tokio::spawn(async move {
            let _guard = store.lock_identity_graph(&prod).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "still held");
    drop(held);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter gets the lock")
        .unwrap();
}
