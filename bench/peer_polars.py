#!/usr/bin/env python3
"""The second peer engine of `dossier bench run`: the selections of peer_duckdb.py done by Polars'
lazy API, over the same generated Parquet files and the same identity graph components.

The plan is peer_duckdb.py's, and so is the order of work: filters first (a slim scan of the
wanted `segmentMembership` entries and the primary identity picks a segment job's profiles; the
batches committed after an incremental job's timestamp pick its profiles), the graph cut to the
chosen profiles, then only their fragments keyed and merged (timestampOrdered: per leaf, the value
of the latest ingested fragment that has one: `max_by` of the merge rank over non-null values),
events listed by timestamp for the chosen profiles, zstd Parquet written. Only that is timed.

Each job runs on Polars' streaming engine and on its in-memory engine; the faster is reported
(see BENCHMARKS.md). The output has peer_duckdb.py's flat layout, so the shared checksum SQL
(peer_common.py; DuckDB, untimed) checks Polars' rows and Dossier's the same way.

Usage: peer_polars.py PLAN.json  -> one JSON object per job on stdout, peer_duckdb.py's keys.
"""

import json
import os
import sys
import time

import polars as pl

# The plan's helpers, the checksum and the report are shared with peer_duckdb.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common as shared  # noqa: E402


def path_expr(path):
    """A dotted leaf path as a column: struct fields walked from the top-level column."""
    head, *rest = path.split(".")
    expr = pl.col(head)
    for part in rest:
        expr = expr.struct.field(part)
    return expr


def primary_id(source):
    return pl.col("identityMap").map.get(source["primary_namespace"]).list.first().struct.field("id")


def graph_frame(plan):
    return pl.scan_parquet(plan["identity_graph"]).select(
        "namespace",
        "id",
        pl.concat_str(["component_namespace", pl.lit(":"), "component_id"]).alias("profile"),
    )


def keyed(frame, source, graph):
    """`frame` (with a `pid` column) joined to its profiles; rows without one are dropped."""
    ns_graph = graph.filter(pl.col("namespace") == source["primary_namespace"]).select(
        pl.col("id").alias("pid"), "profile"
    )
    return frame.join(ns_graph, on="pid", how="inner")


def identities(source, namespaces):
    """Every identity of a fragment as `namespace:id`: identityMap's, then the identity fields."""
    parts = [
        pl.col("identityMap").map.get(ns).list.eval(pl.lit(ns + ":") + pl.element().struct.field("id")).fill_null([])
        for ns in namespaces
    ]
    for field, ns in source["identity_fields"]:
        parts.append(pl.concat_list([pl.lit(ns + ":") + path_expr(field)]))
    return pl.concat_list(parts).list.drop_nulls().alias("ids")


def fragments(plan, leaf_paths, graph, namespaces):
    frames = []
    for source in plan["sources"]:
        if source["kind"] != "records":
            continue
        have = shared.source_leaves(source["files"])
        # The row index runs on across the source's files in order: the rank's file and row.
        scan = pl.scan_parquet(source["files"], row_index_name="row")
        columns = [path_expr(p).alias(p) for p in leaf_paths if p in have]
        frame = scan.select(
            primary_id(source).alias("pid"),
            (pl.lit(source["order"] << 48, pl.Int64) + pl.col("row").cast(pl.Int64)).alias("rnk"),
            *columns,
            identities(source, namespaces),
        )
        frames.append(keyed(frame, source, graph))
    return pl.concat(frames, how="diagonal_relaxed")


def merged(frag, leaf_paths):
    return frag.group_by("profile").agg(
        *[pl.col(p).max_by(pl.when(pl.col(p).is_not_null()).then(pl.col("rnk"))) for p in leaf_paths],
        pl.col("ids").explode().unique().sort().alias("profile_identities"),
    )


def chosen_by_segments(plan, job, graph):
    segments = job["segments"]
    frames = []
    for source in plan["sources"]:
        if source["kind"] != "records" or not shared.has_memberships(source):
            continue
        picked = [
            pl.col("segmentMembership").map.get(s["ns"]).map.get(s["id"]).alias(f"m{i}") for i, s in enumerate(segments)
        ]
        slim = pl.scan_parquet(source["files"]).select(primary_id(source).alias("pid"), *picked)
        slim = slim.filter(pl.any_horizontal([pl.col(f"m{i}").is_not_null() for i in range(len(segments))]))
        frames.append(keyed(slim, source, graph).drop("pid"))
    entries = pl.concat(frames)
    window = job.get("qualification") or {}
    verdicts = []
    for i, s in enumerate(segments):
        m = pl.col(f"m{i}")
        lqt = m.struct.field("lastQualificationTime")
        ok = m.struct.field("status").max_by(pl.when(m.is_not_null()).then(lqt)).is_in(s["statuses"])
        if window.get("start_ms") is not None:
            ok = ok & (lqt.max().dt.epoch("ms") >= window["start_ms"])
        if window.get("end_ms") is not None:
            ok = ok & (lqt.max().dt.epoch("ms") <= window["end_ms"])
        verdicts.append(ok.fill_null(False).alias(f"q{i}"))
    judged = entries.group_by("profile").agg(verdicts)
    if job["per_segment"]:
        # A row per qualified segment, from one pass over the verdicts.
        batches = pl.concat_list(
            [pl.when(pl.col(f"q{i}")).then(pl.lit(i, pl.Int32)) for i in range(len(segments))]
        ).list.drop_nulls()
        return judged.select("profile", batches.alias("batch")).explode("batch").drop_nulls("batch")
    return judged.filter(pl.any_horizontal([pl.col(f"q{i}") for i in range(len(segments))])).select(
        "profile", pl.lit(0, pl.Int32).alias("batch")
    )


def chosen_by_ingestion(plan, job, graph):
    frames = []
    for source in plan["sources"]:
        if source["ingested_ms"] <= job["from_ingest_ms"]:
            continue
        slim = pl.scan_parquet(source["files"]).select(primary_id(source).alias("pid"))
        frames.append(keyed(slim, source, graph).select("profile"))
    if not frames:
        return pl.LazyFrame(schema={"profile": pl.String, "batch": pl.Int32})
    return pl.concat(frames).unique().with_columns(pl.lit(0, pl.Int32).alias("batch"))


def event_lists(plan, job, graph):
    events = shared.events_source(plan)
    fields = ["_id", "timestamp"] + [f for f in job["event_list"]["fields"] if f not in ("_id", "timestamp")]
    scan = pl.scan_parquet(events["files"]).select(
        primary_id(events).alias("pid"), *[path_expr(f).alias(f.split(".")[-1]) for f in fields]
    )
    names = [f.split(".")[-1] for f in fields]
    return (
        keyed(scan, events, graph)
        .group_by("profile")
        .agg(pl.struct(names).sort_by(["timestamp", "_id"], nulls_last=False).alias("eventList"))
    )


def job_query(plan, job, leaf_paths, namespaces):
    graph = graph_frame(plan)
    chosen = None
    if job["segments"]:
        chosen = chosen_by_segments(plan, job, graph)
    elif job.get("from_ingest_ms") is not None:
        chosen = chosen_by_ingestion(plan, job, graph)
    if chosen is not None:
        # The graph cut to the chosen profiles: only their fragments are keyed and merged.
        graph = graph.join(chosen.select("profile").unique(), on="profile", how="semi")
    profiles = merged(fragments(plan, leaf_paths, graph, namespaces), leaf_paths)
    if chosen is not None:
        out = profiles.join(chosen, on="profile", how="inner")
    else:
        out = profiles.with_columns(pl.lit(0, pl.Int32).alias("batch"))
    columns = ["batch", "profile", *leaf_paths, "profile_identities"]
    if job["event_list"] is not None:
        out = out.join(event_lists(plan, job, graph), on="profile", how="left")
        out = out.with_columns(pl.col("eventList").fill_null([]))
        columns.append("eventList")
    return out.select(columns)


def namespaces_of(plan):
    """The identity namespaces of the data: known to anyone who writes such a query (the graph's
    are every fragment's), so not timed."""
    return sorted(pl.scan_parquet(plan["identity_graph"]).select(pl.col("namespace").unique()).collect()["namespace"])


def engines():
    wanted = os.environ.get("DOSSIER_PEER_POLARS_ENGINES")
    return wanted.split(",") if wanted else ["streaming", "in-memory"]


def main():
    plan = json.load(open(sys.argv[1]))
    os.environ.setdefault("POLARS_MAX_THREADS", str(int(plan["threads"])))
    pl.thread_pool_size()  # the pool is sized on first use: after the variable is set
    con = shared.checksum_connection(plan)
    namespaces = namespaces_of(plan)
    for job in plan["jobs"]:
        leaf_paths = shared.job_leaves(job)
        tried = {}
        for engine in engines():
            out_path = f"{plan['out_dir']}/{job['name']}.polars.{engine}.parquet"
            times = []
            for _ in range(int(plan["runs"])):
                query = job_query(shared.job_sources(plan, job), job, leaf_paths, namespaces)
                started = time.perf_counter()
                query.sink_parquet(out_path, compression="zstd", engine="streaming" if engine == "streaming" else "in-memory")
                times.append(time.perf_counter() - started)
            tried[engine] = (times, *shared.peer_checksum(con, job, leaf_paths, out_path))
        shared.report(con, job, leaf_paths, "polars", tried)

if __name__ == "__main__":
    main()
