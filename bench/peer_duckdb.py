#!/usr/bin/env python3
"""The peer engine of `dossier bench run`: the same export selections done by DuckDB.

`dossier bench run` writes a plan (JSON) and calls this script with it. For every job of the plan,
DuckDB reads the generated Parquet files (the very files Dossier ingested), keys each fragment to
its profile through the identity components Dossier's graph computed (handed over as a table, so
DuckDB does the same merge work and not graph building), merges attributes the way the merge
policy says (timestampOrdered: per leaf, the value of the most recently ingested fragment that has
one), merges segment memberships per namespace and segment (latest qualification wins), filters,
attaches each profile's events, and writes zstd Parquet. Only that is timed.

Then, untimed, it computes one order-independent checksum per output, the peer's and Dossier's
(read from the job's batch files) with the same SQL: the sum of a hash of each row's exported
values (every leaf attribute, the sorted identities, the ordered event ids). Equal counts and
checksums mean both engines exported the same rows.

Usage: peer_duckdb.py PLAN.json  -> one JSON object per job on stdout.
"""

import json
import statistics
import sys
import time

import duckdb
import pyarrow.parquet as pq
import pyarrow as pa

# Columns every export carries that are not plain attributes: compared in their own way.
SPECIAL = {"identityMap", "segmentMembership", "eventList", "_acp_system_metadata"}


def quote(path):
    return ".".join('"' + part.replace('"', '""') + '"' for part in path.split("."))


def flat(path):
    """A column named by a whole dotted path (the peer's outputs are flat)."""
    return '"' + path.replace('"', '""') + '"'


def literal(text):
    return "'" + str(text).replace("'", "''") + "'"


def file_list(files):
    return "[" + ", ".join(literal(f) for f in files) + "]"


def leaves(schema, prefix=""):
    """Leaf attribute paths of an Arrow schema: structs are walked, lists and maps are one value."""
    out = []
    for field in schema:
        path = prefix + field.name
        if not prefix and field.name in SPECIAL:
            continue
        if pa.types.is_struct(field.type):
            out.extend(leaves(list(field.type), path + "."))
        else:
            out.append(path)
    return out


def source_leaves(files):
    return set(leaves(pq.read_schema(files[0])))


def normalized(expr):
    # Text of the value: equal values of equal types give equal text in both outputs.
    return f"CAST({expr} AS VARCHAR)"


def row_hash(columns, identities, events):
    parts = [normalized(c) for c in columns]
    parts.append(identities)
    if events is not None:
        parts.append(events)
    return "hash(" + ", ".join(parts) + ")"


def checksum_sql(relation, columns, identities, events, batch_column):
    inner = row_hash(columns, identities, events)
    return f"SELECT count(*), coalesce(sum(hash({batch_column}, {inner})::HUGEINT), 0) FROM {relation}"


def our_checksum(con, job, leaf_paths):
    """Count and checksum of Dossier's output for the job, from its batch files."""
    identities = (
        "list_sort(list_distinct(flatten(list_transform(map_entries(identityMap), "
        "lambda e: list_transform(e.value, lambda v: e.key || ':' || v.id)))))"
    )
    events = None
    if job["event_list"] is not None:
        events = "list_transform(eventList, lambda e: e._id || '|' || coalesce(e.eventType, ''))"
    rows, total = 0, 0
    for index, files in enumerate(job["our_batches"]):
        if not files:
            continue
        relation = f"(SELECT {index} AS batch, * FROM read_parquet({file_list(files)}))"
        count, checksum = con.execute(
            checksum_sql(relation, [quote(p) for p in leaf_paths], identities, events, "batch")
        ).fetchone()
        rows += count
        total += int(checksum)
    return rows, str(total)


def fragments_sql(plan, leaf_paths, segments):
    """One row per profile record fragment: its profile, merge rank, leaves, identities, memberships."""
    parts = []
    for source in plan["sources"]:
        if source["kind"] != "records":
            continue
        have = source_leaves(source["files"])
        columns = []
        for path in leaf_paths:
            value = "c." + quote(path) if path in have else "NULL"
            columns.append(f"{value} AS {flat(path)}")
        identity_parts = [
            "flatten(list_transform(map_entries(c.identityMap), lambda e: list_transform(e.value, lambda v: e.key || ':' || v.id)))"
        ]
        for field, namespace in source["identity_fields"]:
            identity_parts.append(f"CASE WHEN c.{quote(field)} IS NULL THEN [] ELSE [{literal(namespace)} || ':' || c.{quote(field)}] END")
        identities = "list_concat(" + ", ".join(identity_parts) + ")" if len(identity_parts) > 1 else identity_parts[0]
        membership = "c.segmentMembership" if "segmentMembership" in pq.read_schema(source["files"][0]).names else "NULL"
        # Merge rank: later ingestion wins, then later file, then later row (the row ids of a batch
        # follow its files and rows).
        rank = f"({source['order']}::BIGINT << 48) + (c.file_index::BIGINT << 32) + c.file_row_number"
        files = " UNION ALL BY NAME ".join(
            f"SELECT {i} AS file_index, * FROM read_parquet({literal(f)}, file_row_number = true)"
            for i, f in enumerate(source["files"])
        )
        primary = source["primary_namespace"]
        parts.append(
            f"SELECT g.profile, {rank} AS rnk, {source['ingested_ms']}::BIGINT AS ingested, "
            f"{', '.join(columns)}, {identities} AS ids, {membership} AS sm "
            f"FROM ({files}) c JOIN graph g ON g.namespace = {literal(primary)} "
            f"AND g.id = c.identityMap[{literal(primary)}][1].id"
        )
    return " UNION ALL BY NAME ".join(parts)


def events_source(plan):
    return next(s for s in plan["sources"] if s["kind"] == "events")


def peer_sql(plan, job, leaf_paths, out_path):
    segments = job["segments"]
    frag = fragments_sql(plan, leaf_paths, segments)
    merged_leaves = ", ".join(
        f"arg_max({flat(p)}, rnk) FILTER (WHERE {flat(p)} IS NOT NULL) AS {flat(p)}" for p in leaf_paths
    )
    ctes = [f"frag AS ({frag})"]
    ctes.append(
        f"profiles AS (SELECT profile, {merged_leaves}, "
        "list_sort(list_distinct(flatten(list(ids)))) AS profile_identities, max(ingested) AS record_update "
        "FROM frag GROUP BY profile)"
    )
    conditions = []
    batch_expr = "0"
    if segments:
        # Memberships merged per namespace and segment: the entry with the latest qualification.
        wanted = " OR ".join(f"(ns = {literal(s['ns'])} AND seg = {literal(s['id'])})" for s in segments)
        ctes.append(
            "entries AS (SELECT profile, e.key AS ns, s.key AS seg, s.value.status AS status, "
            "s.value.lastQualificationTime AS lqt FROM frag, unnest(map_entries(sm)) AS t(e), "
            f"unnest(map_entries(e.value)) AS u(s) WHERE sm IS NOT NULL)"
        )
        ctes.append(
            "memberships AS (SELECT profile, ns, seg, arg_max(status, lqt) AS status, max(lqt) AS lqt "
            f"FROM entries WHERE {wanted} GROUP BY profile, ns, seg)"
        )
        window = job.get("qualification") or {}
        matches = []
        for index, s in enumerate(segments):
            statuses = ", ".join(literal(x) for x in s["statuses"])
            cond = f"m.ns = {literal(s['ns'])} AND m.seg = {literal(s['id'])} AND m.status IN ({statuses})"
            if window.get("start_ms") is not None:
                cond += f" AND epoch_ms(m.lqt) >= {window['start_ms']}"
            if window.get("end_ms") is not None:
                cond += f" AND epoch_ms(m.lqt) <= {window['end_ms']}"
            matches.append((index, cond))
        if job["per_segment"]:
            selects = " UNION ALL ".join(
                f"SELECT DISTINCT m.profile, {i} AS batch FROM memberships m WHERE {c}" for i, c in matches
            )
        else:
            selects = "SELECT DISTINCT m.profile, 0 AS batch FROM memberships m WHERE " + " OR ".join(
                f"({c})" for _, c in matches
            )
        ctes.append(f"chosen AS ({selects})")
        batch_expr = "chosen.batch"
    events = events_source(plan)
    needs_events = job["event_list"] is not None or job.get("from_ingest_ms") is not None
    if needs_events:
        ev_fields = ["_id", "timestamp"] + [f for f in job["event_list"]["fields"] if f not in ("_id", "timestamp")] if job["event_list"] else []
        struct = ", ".join(f"{literal(f.split('.')[-1])}: e.{quote(f)}" for f in ev_fields)
        primary = events["primary_namespace"]
        listing = (
            f", list({{{struct}}} ORDER BY e.timestamp NULLS FIRST, e._id) AS eventList" if job["event_list"] else ""
        )
        ctes.append(
            f"evs AS (SELECT g.profile, {events['ingested_ms']}::BIGINT AS ingested{listing} "
            f"FROM read_parquet({file_list(events['files'])}) e JOIN graph g ON g.namespace = {literal(primary)} "
            f"AND g.id = e.identityMap[{literal(primary)}][1].id GROUP BY g.profile)"
        )
    joins = ""
    if segments:
        joins += " JOIN chosen ON chosen.profile = p.profile"
    if needs_events:
        joins += " LEFT JOIN evs ON evs.profile = p.profile"
    if job.get("from_ingest_ms") is not None:
        conditions.append(f"greatest(p.record_update, coalesce(evs.ingested, 0)) > {job['from_ingest_ms']}")
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    event_column = ", coalesce(evs.eventList, []) AS eventList" if job["event_list"] else ""
    columns = ", ".join(f"p.{flat(path)}" for path in leaf_paths)
    query = (
        "WITH " + ", ".join(ctes) + f" SELECT {batch_expr} AS batch, p.profile, {columns}, p.profile_identities{event_column} "
        f"FROM profiles p{joins}{where}"
    )
    return f"COPY ({query}) TO {literal(out_path)} (FORMAT parquet, COMPRESSION zstd)"


def peer_checksum(con, job, leaf_paths, out_path):
    events = None
    if job["event_list"] is not None:
        events = "list_transform(eventList, lambda e: e._id || '|' || coalesce(e.eventType, ''))"
    count, checksum = con.execute(
        checksum_sql(f"read_parquet({literal(out_path)})", [flat(p) for p in leaf_paths], "profile_identities", events, "batch")
    ).fetchone()
    return count, str(int(checksum))


def main():
    plan = json.load(open(sys.argv[1]))
    con = duckdb.connect()
    con.execute(f"SET threads = {int(plan['threads'])}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    # Let the aggregations spill to disk rather than fail at the memory limit (80 % of RAM).
    con.execute(f"SET temp_directory = {literal(plan['out_dir'] + '/duckdb-spill')}")
    con.execute(
        "CREATE VIEW graph AS SELECT namespace, id, component_namespace || ':' || component_id AS profile "
        f"FROM read_parquet({literal(plan['identity_graph'])})"
    )
    for job in plan["jobs"]:
        first = next((files[0] for files in job["our_batches"] if files), None)
        if first is None:
            raise SystemExit(f"job {job['name']}: Dossier wrote no file to compare with")
        leaf_paths = leaves(pq.read_schema(first))
        out_path = f"{plan['out_dir']}/{job['name']}.parquet"
        sql = peer_sql(plan, job, leaf_paths, out_path)
        times = []
        for _ in range(int(plan["runs"])):
            started = time.perf_counter()
            con.execute(sql)
            times.append(time.perf_counter() - started)
        peer_rows, peer_sum = peer_checksum(con, job, leaf_paths, out_path)
        our_rows, our_sum = our_checksum(con, job, leaf_paths)
        print(
            json.dumps(
                {
                    "job": job["name"],
                    "peer_s": statistics.median(times),
                    "peer_runs_s": times,
                    "peer_rows": peer_rows,
                    "peer_checksum": peer_sum,
                    "our_rows": our_rows,
                    "our_checksum": our_sum,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
