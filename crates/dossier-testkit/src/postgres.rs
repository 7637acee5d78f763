//! A private PostgreSQL 15 cluster for tests: `initdb` + `pg_ctl` from Debian's `postgresql-15`
//! into a temp folder, on a free loopback port, as the `postgres` user when run as root.
