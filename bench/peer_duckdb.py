#!/usr/bin/env python3
"""A peer engine of `dossier bench run`: the same export selections done by DuckDB, written the way
a data engineer who knows DuckDB would write them for each job.

`dossier bench run` writes a plan (JSON) and calls this script with it. For every job of the plan,
DuckDB reads the generated Parquet files (the very files Dossier ingested), keys each fragment to
its profile through the identity components Dossier's graph computed (handed over as a table, so
DuckDB does the same merge work and not graph building), merges attributes the way the merge
policy says (timestampOrdered: per leaf, the value of the most recently ingested fragment that has
one), and writes zstd Parquet. Only that is timed.

Filters come first, as anyone would write them by hand:
- a segment job picks its profiles from a slim scan of `segmentMembership` (only the wanted
  segments' entries) and the primary identity, keyed through the graph and merged per segment
  (latest qualification wins), then merges only the chosen profiles' fragments;
- an incremental job (`fromIngestTimestamp`) picks the profiles the batches committed after the
  timestamp touched, reading only those batches' primary identities, then merges those profiles;
- events are read only when the job lists them, and only the chosen profiles' are kept.
Where two formulations were both reasonable, `FORMULATIONS` holds both and the script keeps the
faster (see BENCHMARKS.md for which won).

Then, untimed, it checks the output against Dossier's with the checksum both peers share
(peer_common.py).

Usage: peer_duckdb.py PLAN.json  -> one JSON object per job on stdout.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import (  # noqa: E402
    checksum_connection,
    events_source,
    job_sources,
    file_list,
    flat,
    has_memberships,
    job_leaves,
    literal,
    peer_checksum,
    quote,
    report,
    source_leaves,
)

# ---- the selections ---------------------------------------------------------------------------


def primary_id(source, alias="c"):
    """The fragment's primary identity: the first id of its primary namespace in `identityMap`."""
    return f"{alias}.identityMap[{literal(source['primary_namespace'])}][1].id"


def graph_join(source, graph, alias="c"):
    return f"JOIN {graph} g ON g.namespace = {literal(source['primary_namespace'])} AND g.id = {primary_id(source, alias)}"


def identities_expr(source):
    """Every identity of a fragment as `namespace:id`: its identityMap and its identity fields."""
    parts = [
        "flatten(list_transform(map_entries(c.identityMap), lambda e: list_transform(e.value, lambda v: e.key || ':' || v.id)))"
    ]
    for field, namespace in source["identity_fields"]:
        parts.append(f"CASE WHEN c.{quote(field)} IS NULL THEN [] ELSE [{literal(namespace)} || ':' || c.{quote(field)}] END")
    return "list_concat(" + ", ".join(parts) + ")" if len(parts) > 1 else parts[0]


def ranked_files(source):
    """The source's rows with their file's index and row number: the merge rank's parts."""
    return " UNION ALL BY NAME ".join(
        f"SELECT {i} AS file_index, * FROM read_parquet({literal(f)}, file_row_number = true)"
        for i, f in enumerate(source["files"])
    )


def fragments_sql(plan, leaf_paths, graph):
    """One row per profile record fragment keyed through `graph`: profile, merge rank, leaves,
    identities. Only profiles `graph` holds are kept, so a graph cut down to the chosen profiles
    is the filter."""
    parts = []
    for source in plan["sources"]:
        if source["kind"] != "records":
            continue
        have = source_leaves(source["files"])
        columns = [f"{'c.' + quote(p) if p in have else 'NULL'} AS {flat(p)}" for p in leaf_paths]
        # Merge rank: later ingestion wins, then later file, then later row (the row ids of a batch
        # follow its files and rows).
        rank = f"({source['order']}::BIGINT << 48) + (c.file_index::BIGINT << 32) + c.file_row_number"
        parts.append(
            f"SELECT g.profile, {rank} AS rnk, {', '.join(columns)}, {identities_expr(source)} AS ids "
            f"FROM ({ranked_files(source)}) c {graph_join(source, graph)}"
        )
    return " UNION ALL BY NAME ".join(parts)


def memberships_sql(plan, segments):
    """The wanted segments' entries only, one column per segment (`m0`, `m1`, ...), keyed to
    profiles: a slim scan of the primary identity and `segmentMembership`."""
    parts = []
    for source in plan["sources"]:
        if source["kind"] != "records" or not has_memberships(source):
            continue
        picked = ", ".join(
            f"c.segmentMembership[{literal(s['ns'])}][{literal(s['id'])}] AS m{i}" for i, s in enumerate(segments)
        )
        any_entry = " OR ".join(f"m{i} IS NOT NULL" for i in range(len(segments)))
        parts.append(
            f"SELECT g.profile, {', '.join(f'c.m{i}' for i in range(len(segments)))} FROM "
            f"(SELECT {primary_id(source)} AS pid, {picked} FROM read_parquet({file_list(source['files'])}) c) c "
            f"JOIN graph g ON g.namespace = {literal(source['primary_namespace'])} AND g.id = c.pid "
            f"WHERE {any_entry}"
        )
    return " UNION ALL ".join(parts)


def segment_condition(job, index, segment):
    """Whether the profile's merged entry for segment `index` (latest qualification) qualifies."""
    m = f"m{index}"
    status = f"arg_max({m}.status, {m}.lastQualificationTime) FILTER (WHERE {m} IS NOT NULL)"
    statuses = ", ".join(literal(x) for x in segment["statuses"])
    cond = f"{status} IN ({statuses})"
    window = job.get("qualification") or {}
    latest = f"max({m}.lastQualificationTime)"
    if window.get("start_ms") is not None:
        cond += f" AND epoch_ms({latest}) >= {window['start_ms']}"
    if window.get("end_ms") is not None:
        cond += f" AND epoch_ms({latest}) <= {window['end_ms']}"
    return cond


def chosen_by_segments(plan, job):
    """(profile, batch) of the profiles the job's segments select: batch 0 for all, or one per
    segment with `segmentPerBatch`."""
    segments = job["segments"]
    base = f"(SELECT * FROM ({memberships_sql(plan, segments)}))"
    conditions = [segment_condition(job, i, s) for i, s in enumerate(segments)]
    if job["per_segment"]:
        # One aggregation gives every segment's verdict; unnest makes a row per qualified batch.
        verdicts = ", ".join(f"CASE WHEN {c} THEN {i} END" for i, c in enumerate(conditions))
        return (
            f"SELECT profile, unnest(list_filter([{verdicts}], lambda x: x IS NOT NULL)) AS batch "
            f"FROM {base} GROUP BY profile"
        )
    having = " OR ".join(f"({c})" for c in conditions)
    return f"SELECT profile, 0 AS batch FROM {base} GROUP BY profile HAVING {having}"


def chosen_by_ingestion(plan, job):
    """The profiles the batches committed after the job's timestamp touched: only those batches'
    primary identities are read."""
    parts = []
    for source in plan["sources"]:
        if source["ingested_ms"] <= job["from_ingest_ms"]:
            continue
        parts.append(
            f"SELECT g.profile FROM (SELECT {primary_id(source)} AS pid FROM read_parquet({file_list(source['files'])}) c) c "
            f"JOIN graph g ON g.namespace = {literal(source['primary_namespace'])} AND g.id = c.pid"
        )
    if not parts:
        return "SELECT NULL::VARCHAR AS profile, 0 AS batch WHERE false"
    return f"SELECT DISTINCT profile, 0 AS batch FROM ({' UNION '.join(parts)})"


def event_lists_sql(plan, job, graph):
    events = events_source(plan)
    fields = ["_id", "timestamp"] + [f for f in job["event_list"]["fields"] if f not in ("_id", "timestamp")]
    struct = ", ".join(f"{literal(f.split('.')[-1])}: c.{quote(f)}" for f in fields)
    return (
        f"SELECT g.profile, list({{{struct}}} ORDER BY c.timestamp NULLS FIRST, c._id) AS eventList "
        f"FROM read_parquet({file_list(events['files'])}) c {graph_join(events, graph)} GROUP BY g.profile"
    )


def merged_sql(leaf_paths):
    merged = ", ".join(
        f"arg_max({flat(p)}, rnk) FILTER (WHERE {flat(p)} IS NOT NULL) AS {flat(p)}" for p in leaf_paths
    )
    return f"SELECT profile, {merged}, list_sort(list_distinct(flatten(list(ids)))) AS profile_identities FROM frag GROUP BY profile"


def peer_sql(plan, job, leaf_paths, out_path, formulation):
    """The job as one COPY statement. `formulation` says how the chosen profiles cut the merge:
    `graph-first` keys only the chosen profiles' identities (the graph is cut to them before the
    fragments are joined), `semi-join` keys every fragment and keeps the chosen ones before the
    merge, `merge-first` merges every profile and keeps the chosen ones after."""
    ctes = []
    chosen = None
    if job["segments"]:
        chosen = chosen_by_segments(plan, job)
    elif job.get("from_ingest_ms") is not None:
        chosen = chosen_by_ingestion(plan, job)
    graph = "graph"
    if chosen is not None:
        ctes.append(f"chosen AS MATERIALIZED ({chosen})")
        if formulation == "graph-first":
            ctes.append("cut AS (SELECT * FROM graph WHERE profile IN (SELECT profile FROM chosen))")
            graph = "cut"
    ctes.append(f"frag AS ({fragments_sql(plan, leaf_paths, graph)})")
    if chosen is not None and formulation == "semi-join":
        ctes[-1] = f"frag AS (SELECT * FROM ({fragments_sql(plan, leaf_paths, graph)}) WHERE profile IN (SELECT profile FROM chosen))"
    ctes.append(f"profiles AS ({merged_sql(leaf_paths)})")
    joins, batch = "", "0"
    if chosen is not None:
        joins += " JOIN chosen ON chosen.profile = p.profile"
        batch = "chosen.batch"
    event_column = ""
    if job["event_list"] is not None:
        ctes.append(f"evs AS ({event_lists_sql(plan, job, graph)})")
        joins += " LEFT JOIN evs ON evs.profile = p.profile"
        event_column = ", coalesce(evs.eventList, []) AS eventList"
    columns = ", ".join(f"p.{flat(path)}" for path in leaf_paths)
    query = (
        "WITH " + ", ".join(ctes) + f" SELECT {batch} AS batch, p.profile, {columns}, p.profile_identities{event_column} "
        f"FROM profiles p{joins}"
    )
    return f"COPY ({query}) TO {literal(out_path)} (FORMAT parquet, COMPRESSION zstd)"


def formulations(job):
    """The formulations tried for a job (the fastest is reported); a job without a filter has one.
    An incremental job's profiles are most of them, so merging all and then joining is tried too.
    DOSSIER_PEER_FORMULATIONS=a,b picks some by hand (for comparing them)."""
    if not job["segments"] and job.get("from_ingest_ms") is None:
        return ["all"]
    wanted = os.environ.get("DOSSIER_PEER_FORMULATIONS")
    if wanted:
        return wanted.split(",")
    if job.get("from_ingest_ms") is not None:
        return ["graph-first", "semi-join", "merge-first"]
    return ["graph-first", "semi-join"]


def timed(con, sql, runs):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        con.execute(sql)
        times.append(time.perf_counter() - started)
    return times


def main():
    plan = json.load(open(sys.argv[1]))
    con = checksum_connection(plan)
    con.execute("SET preserve_insertion_order = false")
    # Let the aggregations spill to disk rather than fail at the memory limit (80 % of RAM).
    con.execute(f"SET temp_directory = {literal(plan['out_dir'] + '/duckdb-spill')}")
    con.execute(
        "CREATE VIEW graph AS SELECT namespace, id, component_namespace || ':' || component_id AS profile "
        f"FROM read_parquet({file_list(plan['identity_graph'])})"
    )
    for job in plan["jobs"]:
        leaf_paths = job_leaves(job)
        tried = {}
        for formulation in formulations(job):
            out_path = f"{plan['out_dir']}/{job['name']}.duckdb.{formulation}.parquet"
            times = timed(con, peer_sql(job_sources(plan, job), job, leaf_paths, out_path, formulation), int(plan["runs"]))
            tried[formulation] = (times, *peer_checksum(con, job, leaf_paths, out_path))
        report(con, job, leaf_paths, "duckdb", tried)


if __name__ == "__main__":
    main()
