//! What PostgreSQL does beyond the backend suite.
