"""What both peer engines of `dossier bench run` (peer_duckdb.py, peer_polars.py) share: the plan's
leaf paths and sources, the checksum that compares a peer's rows with Dossier's, and the line
reported for each job.

The checksum is one order-independent number per output, computed untimed by DuckDB with the same
SQL for every output (a peer's flat file or Dossier's batch files): the sum of a hash of each row's
exported values (every leaf attribute, the sorted identities, the ordered event ids). Equal counts
and checksums mean both exported the same rows.
"""

import json
import statistics

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


def has_memberships(source):
    return "segmentMembership" in pq.read_schema(source["files"][0]).names


def job_leaves(job):
    """The leaf paths Dossier exported for the job: the schema of its first batch file."""
    first = next((files[0] for files in job["our_batches"] if files), None)
    if first is None:
        raise SystemExit(f"job {job['name']}: Dossier wrote no file to compare with")
    return leaves(pq.read_schema(first))


# ---- the checksum ------------------------------------------------------------------------------


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


EVENT_IDS = "list_transform(eventList, lambda e: e._id || '|' || coalesce(e.eventType, ''))"


def our_checksum(con, job, leaf_paths):
    """Count and checksum of Dossier's output for the job, from its batch files."""
    identities = (
        "list_sort(list_distinct(flatten(list_transform(map_entries(identityMap), "
        "lambda e: list_transform(e.value, lambda v: e.key || ':' || v.id)))))"
    )
    events = EVENT_IDS if job["event_list"] is not None else None
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


def peer_checksum(con, job, leaf_paths, out_path):
    """Count and checksum of a peer's output file (flat leaf columns, `profile_identities`)."""
    events = EVENT_IDS if job["event_list"] is not None else None
    count, checksum = con.execute(
        checksum_sql(f"read_parquet({literal(out_path)})", [flat(p) for p in leaf_paths], "profile_identities", events, "batch")
    ).fetchone()
    return count, str(int(checksum))


def checksum_connection(plan):
    con = duckdb.connect()
    con.execute(f"SET threads = {int(plan['threads'])}")
    con.execute("SET TimeZone = 'UTC'")
    return con


# ---- the plan and the report ------------------------------------------------------------------


def job_sources(plan, job):
    """The plan with the job's own sources (a batch ingested for it alone, after the load) after
    the loaded ones."""
    extra = job.get("extra_sources") or []
    return dict(plan, sources=plan["sources"] + extra) if extra else plan


def events_source(plan):
    return next(s for s in plan["sources"] if s["kind"] == "events")


def report(con, job, leaf_paths, peer, tried):
    """Prints the job's line: the fastest of `tried` (formulation -> (run times, rows, checksum),
    each a way this peer can run the job) and Dossier's count and checksum. Every formulation must
    export the same rows: one that differs is reported as the peer's rows, so the row check fails."""
    best = min(tried, key=lambda name: statistics.median(tried[name][0]))
    times, peer_rows, peer_sum = tried[best]
    for _, rows, checksum in tried.values():
        if (rows, checksum) != (peer_rows, peer_sum):
            peer_rows, peer_sum = rows, checksum
    our_rows, our_sum = our_checksum(con, job, leaf_paths)
    print(
        json.dumps(
            {
                "job": job["name"],
                "peer": peer,
                "formulation": best,
                "formulations_s": {name: statistics.median(t[0]) for name, t in tried.items()},
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
