//! Which queued job a worker claims next: fair between sandboxes.
//!
//! Export jobs and segment jobs share the workers and one queue (`job_queue`). Claiming the
//! oldest job of any tenant let one sandbox that queued many (or slow) jobs hold every worker
//! while another sandbox's job waited behind them (issue 12). So a claim picks, among queued
//! jobs, one of the sandbox that has the fewest jobs running (export and segment jobs
//! together), oldest first within that whatever its kind; and with more than one worker a
//! sandbox runs at most `workers - 1` jobs at once, so one worker is always free for the other
//! sandboxes. The price: a lone sandbox on two workers runs one job at a time. Counts come from
//! the store, so they include jobs other processes run.

/// How many jobs of one sandbox may run at once (export and segment jobs together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerSandbox {
    max_running: Option<u32>,
}

impl PerSandbox {
    /// No cap: only the fewest-running-first order applies.
    pub const UNLIMITED: PerSandbox = PerSandbox { max_running: None };

    /// The cap for a process with `workers` export workers: `workers - 1` when there are two or
    /// more, so no sandbox holds every worker; no cap with a single worker (it would run nothing).
    pub fn for_workers(workers: usize) -> Self {
        if workers > 1 {
            Self {
                max_running: Some(u32::try_from(workers - 1).unwrap_or(u32::MAX)),
            }
        } else {
            Self::UNLIMITED
        }
    }

    /// At most `max` jobs of one sandbox at once (at least one).
    pub fn at_most(max: u32) -> Self {
        Self {
            max_running: Some(max.max(1)),
        }
    }

    pub fn max_running(self) -> Option<u32> {
        self.max_running
    }

    /// The bound for the claim query's `running < ?`.
    pub(crate) fn bound(self) -> i64 {
        self.max_running.map_or(i64::MAX, i64::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_or_more_workers_leave_one_free_for_other_sandboxes() {
        assert_eq!(PerSandbox::for_workers(0), PerSandbox::UNLIMITED);
        assert_eq!(PerSandbox::for_workers(1), PerSandbox::UNLIMITED);
        assert_eq!(PerSandbox::for_workers(2).max_running(), Some(1));
        assert_eq!(PerSandbox::for_workers(8).max_running(), Some(7));
        assert_eq!(PerSandbox::at_most(0).max_running(), Some(1));
        assert_eq!(PerSandbox::UNLIMITED.bound(), i64::MAX);
    }
}
