//! The metadata store's contract, written once and run against every backend.
//!
//! Each concern has a file of cases; a case is an `async fn case_name(store: MetaStore)` that
//! gets a fresh, empty store (no organization, no sandbox) and panics when the backend breaks
//! what the engine and the API rely on. The cases call the store's methods only, never SQL, so
//! the same file judges SQLite and PostgreSQL.
//!
//! A backend runs the suite with one line in a `#[cfg(test)]` module of its own:
//!
//! ```ignore
//! crate::meta::suite::backend_suite!(sqlite, crate::meta::suite::open_sqlite);
//! ```
//!
//! `$open` is called once per case and returns `(MetaStore, guard)`: the store, and whatever
//! must live as long as the case (the temp folder of a SQLite file, the throw-away database of a
//! server); or an `Option` of that, `None` when the backend's server is not installed here (the
//! case then skips, as `dossier_testkit::missing` said — under `CI=true` it has already failed). Every case is listed in [`backend_suite!`]; a case written but not listed is dead
//! code, which the workspace's `-D warnings` refuses, so none is silently skipped.
//!
//! The job queue's cases (`job_queue.rs`: claim, fairness, heartbeat, end, cancel, recovery, for
//! both kinds of job) are part of it.

pub(crate) mod batch_files;
pub(crate) mod catalog;
pub(crate) mod clients;
pub(crate) mod export_jobs;
pub(crate) use super::fixtures;
pub(crate) mod identity_graph;
pub(crate) mod job_queue;
pub(crate) mod merge_policies;
pub(crate) mod paging;
pub(crate) mod sandboxes;
pub(crate) mod schedules;
pub(crate) mod schemas;
pub(crate) mod segment_definitions;
pub(crate) mod tenancy;

use super::MetaStore;

/// Expands to `mod $backend { mod <concern> { #[tokio::test] async fn <case>() ... } }`: one test
/// per case, named `<backend>::<concern>::<case>`, each on a fresh store from `$open`.
///
/// The tests run on a multi-threaded runtime so that cases about concurrent writers (export job
/// ids) really race.
macro_rules! backend_suite {
    ($backend:ident, $open:expr) => {
        $crate::meta::suite::backend_suite!(@backend $backend, $open, {
            tenancy: [
                reads_of_another_tenant_find_nothing,
                writes_to_another_tenant_change_nothing,
            ],
            paging: [
                datasets_and_batches_page_in_order,
                schemas_page_in_order,
                merge_policies_page_with_totals,
                segment_definitions_page_with_totals,
                export_jobs_page_newest_first,
                the_largest_offset_reads_an_empty_page,
            ],
            sandboxes: [
                an_org_starts_with_prod_and_its_default_policy,
                sandboxes_are_created_once_and_listed_by_org,
            ],
            clients: [
                a_client_authenticates_with_its_secret_only,
                revoking_stops_the_secret_and_is_idempotent,
                clients_are_limited_to_existing_sandboxes,
                the_signing_key_is_made_once,
            ],
            catalog: [
                datasets_round_trip_and_update,
                deleting_a_dataset_removes_its_batches,
                a_dataset_written_to_by_an_export_cannot_be_deleted,
                batches_round_trip_and_track_their_dataset,
                batches_are_listed_by_dataset_and_status,
                transitions_are_compare_and_set,
                profile_enabled_datasets_oldest_first,
            ],
            batch_files: [
                a_commit_makes_files_visible_with_the_outcome,
                only_a_processing_batch_commits,
                committed_batches_are_in_commit_order,
                batches_in_status_span_every_tenant,
                an_upload_is_recorded_only_while_loading,
            ],
            schemas: [
                schemas_round_trip_by_id_and_alt_id,
                identity_descriptors_one_per_field_and_one_primary,
                unions_grow_with_enabled_datasets_and_refuse_conflicts,
            ],
            merge_policies: [
                one_default_per_schema,
                updates_keep_every_version,
                bulk_get_returns_latest_known_ids,
                write_errors,
            ],
            segment_definitions: [
                definitions_round_trip_and_update,
                names_and_merge_policies_are_checked,
                dependents_block_deletion_and_cycles_are_refused,
                bulk_get_returns_known_ids,
            ],
            schedules: [
                schedules_round_trip_page_and_replace,
                schedules_of_another_sandbox_are_not_found,
                a_due_tick_is_claimed_once,
                runs_are_recorded_once_per_tick,
            ],
            identity_graph: [
                versions_record_once_and_cover_batches,
                pruning_keeps_the_newest_and_every_fold,
                discarding_uncovers_its_batches,
                one_writer_per_sandbox,
            ],
            export_jobs: [
                ids_are_sequential_per_sandbox,
                concurrent_creations_get_unique_gap_free_ids,
                an_idempotency_key_replays_or_refuses,
                creation_refuses_a_full_queue_and_a_gone_dataset,
                jobs_are_read_back_as_created,
            ],
            job_queue: [
                claim_takes_the_oldest_job_of_any_kind_once,
                claim_records_worker_lease_and_attempt,
                queue_depth_counts_live_jobs_by_kind_and_state,
                each_kind_has_its_own_queue_limit,
                claims_go_to_the_sandbox_with_the_fewest_running,
                segment_jobs_share_the_cap_with_exports,
                heartbeat_renews_the_lease_and_reports_a_cancel,
                cancel_ends_a_queued_job_and_marks_a_running_one,
                an_end_takes_the_job_off_the_queue_once,
                recovery_lists_running_jobs_and_expired_leases,
                a_takeover_fences_the_old_worker_and_requeues_the_job,
                an_ingestion_holds_a_lease_until_its_batch_commits_or_aborts,
            ],
        });
    };
    (@backend $backend:ident, $open:expr, { $($concern:ident: [$($case:ident),* $(,)?]),* $(,)? }) => {
        mod $backend {
            $(
                mod $concern {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                        async fn $case() {
                            let Some((store, _guard)) = $crate::meta::suite::Opened::opened(($open)().await) else {
                                return;
                            };
                            $crate::meta::suite::$concern::$case(store).await;
                        }
                    )*
                }
            )*
        }
    };
}
pub(crate) use backend_suite;

/// The SQLite backend's opener: a new database file in a temp folder that lives as long as the
/// case.
pub(crate) async fn open_sqlite() -> (MetaStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp folder");
    let store = MetaStore::open_sqlite(&dir.path().join("meta.sqlite"))
        .await
        .expect("a fresh SQLite store opens");
    (store, dir)
}

/// What a backend's opener returns: a store and its guard, or `None` when the server is missing.
pub(crate) trait Opened {
    type Guard;
    fn opened(self) -> Option<(MetaStore, Self::Guard)>;
}

impl<G> Opened for (MetaStore, G) {
    type Guard = G;
    fn opened(self) -> Option<(MetaStore, G)> {
        Some(self)
    }
}

impl<G> Opened for Option<(MetaStore, G)> {
    type Guard = G;
    fn opened(self) -> Option<(MetaStore, G)> {
        self
    }
}

/// The PostgreSQL backend's opener: a fresh database in the test process's private cluster
/// (`dossier_testkit::postgres`); `None` when PostgreSQL 15 is not installed.
pub(crate) async fn open_postgres() -> Option<(MetaStore, dossier_testkit::postgres::PgDatabase)> {
    let database = tokio::task::spawn_blocking(dossier_testkit::postgres::database)
        .await
        .expect("the database is created")?;
    let store = MetaStore::open_postgres(&database.url)
        .await
        .expect("a fresh PostgreSQL store opens");
    Some((store, database))
}

backend_suite!(sqlite, crate::meta::suite::open_sqlite);
backend_suite!(postgres, crate::meta::suite::open_postgres);
