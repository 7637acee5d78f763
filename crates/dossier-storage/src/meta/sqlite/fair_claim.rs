//! The SQL of the fair claim (the rule is [`PerSandbox`]'s): which queued job a worker claims next.

#[cfg(doc)]
use crate::meta::PerSandbox;

/// The query for the next queued job of either kind to claim (one `?`: [`PerSandbox::bound`]):
/// a queued job of a sandbox under its cap, fewest running first, then oldest (`queued`, then
/// queue order). The kinds compete on the same terms: a segment job no longer waits behind a
/// younger export.
pub(super) const NEXT_QUEUED_JOB: &str = "WITH running AS (
       SELECT org, sandbox, COUNT(*) AS n FROM job_queue WHERE state = 'running' AND kind <> 'ingest'
       GROUP BY org, sandbox)
     SELECT q.* FROM job_queue q
     LEFT JOIN running r ON r.org = q.org AND r.sandbox = q.sandbox
     WHERE q.state = 'queued' AND COALESCE(r.n, 0) < ?
     ORDER BY COALESCE(r.n, 0), q.queued, q.rowid
     LIMIT 1";
