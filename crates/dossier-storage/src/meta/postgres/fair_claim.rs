//! The SQL of the fair claim (the rule is [`PerSandbox`]'s): which queued job a worker claims next.

#[cfg(doc)]
use crate::meta::PerSandbox;

/// The query for the next queued job of either kind to claim (`$1`: [`PerSandbox::bound`]): a
/// queued job of a sandbox under its cap, fewest running first, then oldest (`queued`, then queue
/// order), as on SQLite (`seq` standing in for its rowid). Its row is locked `FOR UPDATE SKIP LOCKED`: a row another transaction
/// holds (a cancel deciding on it) is passed over rather than waited for.
pub(super) const NEXT_QUEUED_JOB: &str = "WITH running AS (
       SELECT org, sandbox, COUNT(*) AS n FROM job_queue WHERE state = 'running' AND kind <> 'ingest'
       GROUP BY org, sandbox)
     SELECT q.* FROM job_queue q
     LEFT JOIN running r ON r.org = q.org AND r.sandbox = q.sandbox
     WHERE q.state = 'queued' AND COALESCE(r.n, 0) < $1
     ORDER BY COALESCE(r.n, 0), q.queued, q.seq
     LIMIT 1
     FOR UPDATE OF q SKIP LOCKED";
