//! Schedules: stored per sandbox, replaced by compare-and-set on `updated`, and due ticks
//! claimed by exactly one of any number of racing workers.

use serde_json::json;

use dossier_model::schedule::{Schedule, ScheduleListQuery, ScheduleSpec, ScheduleState};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::fixtures::{three_tenants, with_prod};
use crate::meta::{MetaStore, ScheduleRun};

/// Every second, active: due one second after `now`.
fn every_second(name: &str) -> ScheduleSpec {
    ScheduleSpec::from_json(&json!({
        "name": name, "type": "batch_segmentation", "properties": {"segments": ["*"]},
        "schedule": "* * * * * ?", "state": "active",
    }))
    .unwrap()
}

async fn stored(store: &MetaStore, t: &Tenant, name: &str, now: EpochMillis) -> Schedule {
    let schedule = Schedule::new(format!("{name}-id"), t, every_second(name), now);
    store.create_schedule(&schedule).await.unwrap();
    schedule
}

fn run(t: &Tenant, schedule: &Schedule, tick: EpochMillis, job_id: &str) -> ScheduleRun {
    ScheduleRun {
        tenant: t.clone(),
        schedule_id: schedule.id.clone(),
        tick,
        started: tick + 5,
        job_kind: "segment".into(),
        job_id: job_id.into(),
    }
}

pub(crate) async fn schedules_round_trip_page_and_replace(store: MetaStore) {
    let t = with_prod(&store).await;
    let first = stored(&store, &t, "a", 1_000).await;
    assert_eq!(first.next_run_at, Some(2_000));
    assert_eq!(store.schedule(&t, &first.id).await.unwrap(), Some(first.clone()));
    let mut export = Schedule::new(
        "b-id".into(),
        &t,
        ScheduleSpec::from_json(&json!({
            "name": "b", "type": "export", "schedule": "0 0 1 * * ?",
            "properties": {"exportJob": {"fields": "identityMap", "destination": {"datasetId": "d"},
                                         "schema": {"name": "_xdm.context.profile"},
                                         "filter": {"fromIngestTimestamp": "lastRun"}}},
        }))
        .unwrap(),
        2_000,
    );
    store.create_schedule(&export).await.unwrap();
    assert_eq!(store.schedule(&t, "b-id").await.unwrap(), Some(export.clone()));

    let page = store
        .list_schedules(&t, &ScheduleListQuery { start: 1, limit: 5 })
        .await
        .unwrap();
    assert_eq!((page.total, page.items), (2, vec![export.clone()]), "oldest first");

    let mut spec = export.spec.clone();
    spec.state = ScheduleState::Active;
    let changed = export.changed(spec, 3_000);
    assert!(store.replace_schedule(&changed, export.updated).await.unwrap());
    assert!(
        !store.replace_schedule(&changed, export.updated).await.unwrap(),
        "a replace that read an older version changes nothing"
    );
    export = store.schedule(&t, "b-id").await.unwrap().unwrap();
    assert_eq!(export, changed);
    assert!(export.next_run_at.is_some());

    assert!(store.delete_schedule(&t, &first.id).await.unwrap());
    assert!(!store.delete_schedule(&t, &first.id).await.unwrap());
    assert_eq!(store.schedule(&t, &first.id).await.unwrap(), None);
}

pub(crate) async fn schedules_of_another_sandbox_are_not_found(store: MetaStore) {
    let [a, b, _] = three_tenants(&store).await;
    let schedule = stored(&store, &a, "a", 1_000).await;
    assert_eq!(store.schedule(&b, &schedule.id).await.unwrap(), None);
    assert_eq!(
        store
            .list_schedules(&b, &ScheduleListQuery { start: 0, limit: 10 })
            .await
            .unwrap()
            .total,
        0
    );
    assert!(!store.delete_schedule(&b, &schedule.id).await.unwrap());
    let moved = Schedule {
        org: b.org.clone(),
        sandbox: b.sandbox.clone(),
        ..schedule.changed(schedule.spec.clone(), 2_000)
    };
    assert!(!store.replace_schedule(&moved, schedule.updated).await.unwrap());
    assert!(
        !store
            .claim_schedule_tick(&b, &schedule.id, 2_000, Some(3_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_schedule_run(&run(&b, &schedule, 2_000, "j"))
            .await
            .unwrap()
    );
    assert_eq!(store.schedule(&a, &schedule.id).await.unwrap(), Some(schedule));
}

pub(crate) async fn a_due_tick_is_claimed_once(store: MetaStore) {
    let t = with_prod(&store).await;
    let schedule = stored(&store, &t, "a", 1_000).await;
    let mut idle = every_second("idle");
    idle.state = ScheduleState::Inactive;
    store
        .create_schedule(&Schedule::new("idle-id".into(), &t, idle, 1_000))
        .await
        .unwrap();
    assert!(store.due_schedules(1_999, 10).await.unwrap().is_empty());
    let due = store.due_schedules(2_500, 10).await.unwrap();
    assert_eq!(due, vec![schedule.clone()], "only the active one, once its tick passed");

    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (store, t, id) = (store.clone(), t.clone(), schedule.id.clone());
            tokio::spawn(async move { store.claim_schedule_tick(&t, &id, 2_000, Some(3_000)).await.unwrap() })
        })
        .collect();
    let mut claimed = 0;
    for racer in racers {
        claimed += usize::from(racer.await.unwrap());
    }
    assert_eq!(claimed, 1, "eight workers read the same tick; one claims it");
    assert!(store.due_schedules(2_500, 10).await.unwrap().is_empty());
    assert_eq!(store.due_schedules(3_000, 10).await.unwrap().len(), 1);
}

pub(crate) async fn runs_are_recorded_once_per_tick(store: MetaStore) {
    let t = with_prod(&store).await;
    let schedule = stored(&store, &t, "a", 1_000).await;
    assert!(
        store
            .record_schedule_run(&run(&t, &schedule, 2_000, "j1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_schedule_run(&run(&t, &schedule, 2_000, "j2"))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_schedule_run(&run(&t, &schedule, 3_000, "j3"))
            .await
            .unwrap()
    );
    let runs = store.schedule_runs(&t, &schedule.id, 10).await.unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ids, ["j3", "j1"], "newest tick first, one job per tick");
    assert_eq!(runs[1], run(&t, &schedule, 2_000, "j1"));
    assert!(store.delete_schedule(&t, &schedule.id).await.unwrap());
    assert!(store.schedule_runs(&t, &schedule.id, 10).await.unwrap().is_empty());
}
