//! The SQL of the fair claim (the rule is [`PerSandbox`]'s): which queued job a worker claims next.

#[cfg(doc)]
use crate::meta::PerSandbox;

/// The query for the next job of `$table` to claim (one `?`: [`PerSandbox::bound`]): a NEW job
/// of a sandbox under its cap, fewest running first, then oldest. Jobs running per sandbox count
/// both kinds. A macro, so each query stays a static string.
macro_rules! next_queued {
    ($table:literal) => {
        concat!(
            "WITH running AS (
               SELECT org, sandbox, COUNT(*) AS n FROM (
                 SELECT org, sandbox FROM export_jobs WHERE status = 'PROCESSING'
                 UNION ALL
                 SELECT org, sandbox FROM segment_jobs WHERE status = 'PROCESSING')
               GROUP BY org, sandbox)
             SELECT j.* FROM ",
            $table,
            " j
             LEFT JOIN running r ON r.org = j.org AND r.sandbox = j.sandbox
             WHERE j.status = 'NEW' AND COALESCE(r.n, 0) < ?
             ORDER BY COALESCE(r.n, 0), j.created, j.rowid
             LIMIT 1"
        )
    };
}

pub(super) const NEXT_EXPORT_JOB: &str = next_queued!("export_jobs");
pub(super) const NEXT_SEGMENT_JOB: &str = next_queued!("segment_jobs");
