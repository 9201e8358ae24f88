"""Pinpointing: narrow differing partitions by key-hash prefix down to small buckets, then compare their rows
per key (step 2 and 3 of evident.reconcile.compare)."""
from __future__ import annotations

import math
from datetime import date
from decimal import Decimal, InvalidOperation

from evident.engines import Engine
from evident.fingerprint import column_text_sql, row_hash_sql
from evident.reconcile.report import KeyDiff, PartitionResult
from evident.reconcile.specs import TableSpec
from evident.reconcile.sql import Sides, bucket_sql, key_text_sql, partition_sql, window

LEAF_ROWS = 64  # a differing bucket this small (on both sides) is fetched and compared row by row
MAX_DIGITS_PER_LEVEL = 3  # at most 16^3 buckets returned by one narrowing query
NULL_TEXT = "\x01"


def _digits_for(rows: int, leaf_rows: int) -> int:
    """Hex digits to add so that buckets hold about leaf_rows/4 rows (capped per query)."""
    if rows <= leaf_rows:
        return 1
    return max(1, min(MAX_DIGITS_PER_LEVEL, math.ceil(math.log(rows / max(1, leaf_rows // 4), 16))))


def bucket_id_sql(spec: TableSpec, digits: int) -> str:
    """'<partition date>:<first `digits` hex digits of md5(key text)>' — one bucket of one partition."""
    part = f"cast({partition_sql(spec)} as varchar) || ':'"
    return f"{part} || {bucket_sql(spec, digits)}" if digits else part


def _in_list(values) -> str:
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def pinpoint(sides: Sides, spec: TableSpec, results: list[PartitionResult], max_keys: int, leaf_rows: int) -> None:
    """Narrow the differing partitions of one table by key-hash prefix, then compare the rows of the few leaf
    buckets. All differing partitions of the table are narrowed together: one query per engine per level."""
    if not results:
        return
    by_part = {r.partition: r for r in results}
    dates = sorted(date.fromisoformat(p) for p in by_part)
    range_where, range_params = window(spec, dates[0], dates[-1])
    frontier = {f"{p}:": (r.duckdb_rows, r.postgres_rows) for p, r in by_part.items()}  # bucket → row counts
    leaves: dict[str, list[str]] = {p: [] for p in by_part}
    truncated: set[str] = set()
    length = 0
    while frontier:
        big: dict[str, tuple[int, int]] = {}
        for bucket, counts in sorted(frontier.items()):
            part = bucket.split(":", 1)[0]
            if max(counts) <= leaf_rows:
                leaves[part].append(bucket)
            else:
                big[bucket] = counts
        for bucket in list(big):
            part = bucket.split(":", 1)[0]
            if len(leaves[part]) >= max_keys:  # enough to show: do not open more of this partition
                truncated.add(part)
                del big[bucket]
        if not big:
            break
        new_length = length + _digits_for(max(max(n) for n in big.values()), leaf_rows)

        def level(engine: Engine, big=tuple(big), length=length, new_length=new_length):
            sql = (f"select {bucket_id_sql(spec, new_length)} as b, count(*), "
                   f"coalesce(sum({row_hash_sql(engine, list(spec.columns))}), 0) from {spec.name} "
                   f"where {range_where} and {bucket_id_sql(spec, length)} in {_in_list(big)} "
                   f"group by 1")
            return {r[0]: (int(r[1]), int(r[2])) for r in engine.fetchall(sql, list(range_params) + list(big))}

        d_buckets, p_buckets = sides.both(level)
        frontier = {}
        for bucket in sorted(set(d_buckets) | set(p_buckets)):
            if d_buckets.get(bucket) == p_buckets.get(bucket):
                continue
            part = bucket.split(":", 1)[0]
            # Each differing bucket holds at least one differing key: open no more than can be kept.
            if len(leaves[part]) + sum(1 for b in frontier if b.startswith(part + ":")) >= max_keys:
                truncated.add(part)
                continue
            frontier[bucket] = (d_buckets.get(bucket, (0, 0))[0], p_buckets.get(bucket, (0, 0))[0])
        length = new_length
    all_leaves = [b for bs in leaves.values() for b in bs[:max_keys]]
    if all_leaves:
        _compare_rows(sides, spec, range_where, range_params, all_leaves, by_part)
    for part, result in by_part.items():
        result.truncated = result.truncated or part in truncated or len(result.diffs) > max_keys
        result.diffs = result.diffs[:max_keys]
        _judge(spec, result)


def _compare_rows(sides: Sides, spec: TableSpec, range_where: str, range_params: list, buckets: list[str],
                  by_part: dict[str, PartitionResult]) -> None:
    by_length: dict[int, list[str]] = {}
    for b in buckets:
        by_length.setdefault(len(b.split(":", 1)[1]), []).append(b)
    names = [c.name for c in spec.columns]

    def fetch(engine: Engine):
        rows = []
        cols = ", ".join(column_text_sql(c) for c in spec.columns)
        for length, group in by_length.items():
            rows += engine.fetchall(
                f"select cast({partition_sql(spec)} as varchar), {key_text_sql(spec)}, {cols} "
                f"from {spec.name} where {range_where} and {bucket_id_sql(spec, length)} in "
                f"{_in_list(group)}", list(range_params) + group)
        return rows

    d_rows, p_rows = sides.both(fetch)
    grouped: dict[str, tuple[dict, dict]] = {p: ({}, {}) for p in by_part}
    for rows, side in ((d_rows, 0), (p_rows, 1)):
        for row in rows:
            part = str(row[0])
            if part not in grouped:
                continue
            by_part[part].rows_fetched += 1
            grouped[part][side].setdefault(row[1], []).append(tuple(None if v == NULL_TEXT else v for v in row[2:]))
    for part, (d_by_key, p_by_key) in grouped.items():
        by_part[part].diffs = _diff_keys(names, d_by_key, p_by_key)


def _diff_keys(names: list[str], d_by_key: dict, p_by_key: dict) -> list[KeyDiff]:
    diffs = []
    for key in sorted(set(d_by_key) | set(p_by_key)):
        d, p = sorted(d_by_key.get(key, []), key=repr), sorted(p_by_key.get(key, []), key=repr)
        if d == p:
            continue
        shown = key.replace("\x1f", " | ")
        if not d:
            diffs.append(KeyDiff(shown, "missing_in_duckdb"))
        elif not p:
            diffs.append(KeyDiff(shown, "missing_in_postgres"))
        elif len(d) != len(p):
            diffs.append(KeyDiff(shown, "duplicated_in_duckdb" if len(d) > len(p) else "duplicated_in_postgres"))
        else:
            for dr, pr in zip(d, p):
                cols = [n for n, a, b in zip(names, dr, pr) if a != b]
                if cols:
                    diffs.append(KeyDiff(shown, "different", cols, {c: dr[names.index(c)] for c in cols},
                                         {c: pr[names.index(c)] for c in cols}))
    return diffs


def _judge(spec: TableSpec, result: PartitionResult) -> None:
    """Measure deltas, and whether the partition's mismatch is only measure values within the tolerance."""
    deltas = []
    measure_only = bool(result.diffs) and not result.truncated
    for d in result.diffs:
        if d.kind != "different" or not set(d.columns) <= set(spec.measures):
            measure_only = False
            continue
        if d.duckdb is None or d.postgres is None:
            measure_only = False
            continue
        for c in d.columns:
            try:
                delta = abs(Decimal(d.duckdb[c]) - Decimal(d.postgres[c]))
            except (InvalidOperation, TypeError):
                measure_only = False
                continue
            deltas.append(delta)
            if delta > spec.tolerance.get(c, Decimal(0)):  # each measure against its own tolerance
                measure_only = False
    result.max_measure_delta = max(deltas, default=Decimal(0))
    result.within_threshold = measure_only and result.duckdb_rows == result.postgres_rows
