//! What PostgreSQL promises beyond the backend suite (`meta/suite/`, run on it with
//! `backend_suite!(postgres, ..)`): that several nodes share one database safely. Each "node" is
//! a store opened on its own connection pool, as separate processes would be.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::join_all;

use dossier_model::export_job::ExportJobStatus;
use dossier_model::tenancy::Tenant;

use crate::meta::fixtures::{ORG_A, created_export_job, new_export_job, org, sandbox, stored_dataset, tenant};
use crate::meta::{ClaimedJob, ExportCancellation, JobKey, JobState, MetaStore, PerSandbox};

/// `count` nodes on one fresh database, opened at once (each runs the migrations: one wins the
/// migrator's lock, the others find the schema up to date). `None` when PostgreSQL is missing.
async fn nodes(count: usize) -> Option<(Vec<MetaStore>, dossier_testkit::postgres::PgDatabase)> {
    let database = tokio::task::spawn_blocking(dossier_testkit::postgres::database)
        .await
        .expect("the database is created")?;
    let opened = join_all((0..count).map(|_| MetaStore::open_postgres(&database.url))).await;
    let stores = opened
        .into_iter()
        .map(|store| store.expect("every node opens the store"))
        .collect();
    Some((stores, database))
}

/// Two sandboxes of one org, each with an export target: `(tenant, target dataset)`.
async fn two_sandboxes(store: &MetaStore) -> [(Tenant, dossier_model::ids::DatasetId); 2] {
    store.ensure_org(&org(ORG_A)).await.unwrap();
    store.create_sandbox(&org(ORG_A), &sandbox("dev")).await.unwrap();
    let prod = tenant(ORG_A, "prod");
    let dev = tenant(ORG_A, "dev");
    let prod_target = stored_dataset(store, &prod, "target", 1).await.id;
    let dev_target = stored_dataset(store, &dev, "target", 1).await.id;
    [(prod, prod_target), (dev, dev_target)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_creations_across_nodes_number_each_sandbox_without_gaps() {
    const PER_SANDBOX: i64 = 100;
    const TARGETS: i64 = 10;
    let Some((nodes, _db)) = nodes(4).await else { return };
    let sandboxes = two_sandboxes(&nodes[0]).await;
    // Jobs into one dataset would also queue behind its row (each creation updates it); ten
    // targets per sandbox leave the numbering to the store's own lock.
    let mut targets = Vec::new();
    for (t, _) in &sandboxes {
        for n in 0..TARGETS {
            targets.push((
                t.clone(),
                stored_dataset(&nodes[0], t, &format!("target {n}"), 1).await.id,
            ));
        }
    }
    let tasks: Vec<_> = (0..PER_SANDBOX * 2)
        .map(|n| {
            let (t, target) = targets[usize::try_from(n).unwrap() % targets.len()].clone();
            let node = nodes[usize::try_from(n).unwrap() % nodes.len()].clone();
            tokio::spawn(async move {
                let id = created_export_job(&node, &new_export_job(&t, &target, n, None)).await;
                (t, id)
            })
        })
        .collect();
    let mut returned: HashMap<Tenant, Vec<i64>> = HashMap::new();
    for task in tasks {
        let (t, id) = task.await.unwrap();
        returned.entry(t).or_default().push(id);
    }
    for (t, _) in &sandboxes {
        let mut ids = returned.remove(t).unwrap();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (1..=PER_SANDBOX).collect::<Vec<_>>(),
            "{t:?}: ids 1..={PER_SANDBOX}, each once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_from_two_nodes_never_take_one_job_twice() {
    const JOBS: i64 = 40;
    let Some((nodes, _db)) = nodes(2).await else { return };
    let sandboxes = two_sandboxes(&nodes[0]).await;
    for n in 0..JOBS {
        let (t, target) = &sandboxes[usize::try_from(n % 2).unwrap()];
        created_export_job(&nodes[0], &new_export_job(t, target, n, None)).await;
    }
    // Two workers per node claim until the queue is empty.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let node = nodes[w % 2].clone();
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                while let Some(job) = node
                    .claim_next_job(&format!("worker-{w}"), 100, PerSandbox::UNLIMITED)
                    .await
                    .unwrap()
                {
                    claimed.push(job.key());
                }
                claimed
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: HashSet<&JobKey> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "no job is claimed twice: {all:?}");
    assert_eq!(all.len(), usize::try_from(JOBS).unwrap(), "every job is claimed");
    for key in &all {
        let entry = nodes[1].queue_entry(key).await.unwrap().unwrap();
        assert_eq!((entry.state, entry.attempts), (JobState::Running, 1), "{key:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_sandbox_cap_holds_across_nodes() {
    let Some((nodes, _db)) = nodes(3).await else { return };
    let [(prod, target), _] = two_sandboxes(&nodes[0]).await;
    for n in 0..12 {
        created_export_job(&nodes[0], &new_export_job(&prod, &target, n, None)).await;
    }
    let claims = join_all((0..12).map(|w| nodes[w % 3].claim_next_job("worker", 100, PerSandbox::at_most(2)))).await;
    let claimed = claims.into_iter().filter(|c| c.as_ref().unwrap().is_some()).count();
    assert_eq!(claimed, 2, "at most two jobs of one sandbox run, whichever node claims");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_a_claim_on_another_node_leaves_one_story() {
    let Some((nodes, _db)) = nodes(2).await else { return };
    let [(prod, target), _] = two_sandboxes(&nodes[0]).await;
    for round in 0..20 {
        let id = created_export_job(&nodes[0], &new_export_job(&prod, &target, round, None)).await;
        let (claim, cancel) = tokio::join!(
            nodes[0].claim_next_job("worker", 100, PerSandbox::UNLIMITED),
            nodes[1].cancel_export_job(&prod, id, 100),
        );
        let claimed = claim
            .unwrap()
            .is_some_and(|job| matches!(job, ClaimedJob::Export(j) if j.id == id));
        let cancel = cancel.unwrap().expect("the job exists");
        let job = nodes[1].export_job(&prod, id).await.unwrap().unwrap();
        let entry = nodes[1].queue_entry(&JobKey::export(&prod, id)).await.unwrap();
        match cancel {
            ExportCancellation::Cancelled(_) => {
                assert!(!claimed, "round {round}: a cancelled job is not handed to a worker");
                assert_eq!(job.status, ExportJobStatus::Cancelled);
                assert_eq!(entry, None, "round {round}: off the queue");
            }
            ExportCancellation::Requested(_) => {
                assert!(claimed, "round {round}: a cancel is only requested of a running job");
                assert_eq!(job.status, ExportJobStatus::Processing);
                let entry = entry.expect("still on the queue");
                assert!(entry.cancel_requested, "round {round}: its worker will see the cancel");
                // End it, so the next round's claim finds only its own job.
                assert!(
                    nodes[0]
                        .end_export_job(&prod, id, Some("worker"), ExportJobStatus::Cancelled, &[], 101)
                        .await
                        .unwrap()
                );
            }
            ExportCancellation::AlreadyEnded(_) => panic!("round {round}: nothing ended the job"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_identity_graph_lock_excludes_a_writer_on_another_node() {
    let Some((nodes, _db)) = nodes(2).await else { return };
    let [(prod, _), (dev, _)] = two_sandboxes(&nodes[0]).await;
    let held = nodes[0].lock_identity_graph(&prod).await.unwrap();
    let second = tokio::time::timeout(Duration::from_millis(300), nodes[1].lock_identity_graph(&prod)).await;
    assert!(second.is_err(), "a writer of the sandbox on another node waits");
    let other = tokio::time::timeout(Duration::from_secs(5), nodes[1].lock_identity_graph(&dev)).await;
    assert!(other.is_ok(), "another sandbox's writer does not wait");
    drop(other);

    let waiter = {
        let (node, prod) = (nodes[1].clone(), prod.clone());
        tokio::spawn(async move { node.lock_identity_graph(&prod).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "still held by the first node");
    drop(held);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the other node gets the lock once the first lets go")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_signs_with_one_key() {
    let Some((nodes, _db)) = nodes(4).await else { return };
    let keys = join_all(nodes.iter().map(|node| node.token_signing_key())).await;
    let keys: HashSet<Vec<u8>> = keys.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        keys.len(),
        1,
        "the nodes racing to make the key all read the one that won"
    );
    assert_eq!(keys.into_iter().next().unwrap().len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_nodes_racing_to_take_over_a_job_one_does() {
    let Some((nodes, _db)) = nodes(4).await else { return };
    let [(prod, target), _] = two_sandboxes(&nodes[0]).await;
    let id = created_export_job(&nodes[0], &new_export_job(&prod, &target, 1, None)).await;
    nodes[0]
        .claim_next_job("dead-node", 10, PerSandbox::UNLIMITED)
        .await
        .unwrap()
        .expect("claimed");
    let key = JobKey::export(&prod, id);
    let expired = nodes[1].queue_entry(&key).await.unwrap().unwrap();
    let takers = join_all(nodes.iter().enumerate().map(|(n, node)| {
        let expired = expired.clone();
        async move {
            node.take_over_job(&expired, &format!("node-{n}"), false, 100)
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(takers.iter().filter(|&&took| took).count(), 1, "{takers:?}");
    let winner = format!("node-{}", takers.iter().position(|&took| took).unwrap());
    let entry = nodes[2].queue_entry(&key).await.unwrap().unwrap();
    assert_eq!(entry.worker.as_deref(), Some(winner.as_str()));
    assert!(
        !nodes[0]
            .end_export_job(&prod, id, Some("dead-node"), ExportJobStatus::Failed, &[], 101)
            .await
            .unwrap(),
        "the old worker's end is fenced off"
    );
    assert!(nodes[3].requeue_job(&key, &winner, false).await.unwrap());
    let again = nodes[1]
        .claim_next_job("node-1", 102, PerSandbox::UNLIMITED)
        .await
        .unwrap()
        .expect("the requeued job is claimed again");
    assert_eq!(again.key(), key);
    assert_eq!(nodes[2].queue_entry(&key).await.unwrap().unwrap().attempts, 2);
}
