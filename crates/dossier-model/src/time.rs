//! Time as the API speaks it: epoch milliseconds.

/// Milliseconds since the Unix epoch, UTC: the unit of every time on a job, batch or dataset.
pub type EpochMillis = i64;

/// The current time in epoch milliseconds.
pub fn now_millis() -> EpochMillis {
    jiff::Timestamp::now().as_millisecond()
}

/// Seconds since the Unix epoch, UTC: the unit of a merge policy's `updateEpoch`, as AEP has it.
pub type EpochSeconds = i64;

/// The current time in epoch seconds.
pub fn now_seconds() -> EpochSeconds {
    jiff::Timestamp::now().as_second()
}
