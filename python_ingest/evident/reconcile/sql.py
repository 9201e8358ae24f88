"""SQL pieces reconciliation writes once for both engines, and Sides: one logical query run on both at once."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

from evident.engines import Engine
from evident.fingerprint import SEP, column_text_sql
from evident.reconcile.specs import TableSpec


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def key_text_sql(spec: TableSpec) -> str:
    return f" || {SEP} || ".join(column_text_sql(spec.column(k)) for k in spec.key)


def bucket_sql(spec: TableSpec, digits: int) -> str:
    return f"substr(md5({key_text_sql(spec)}), 1, {digits})"


def window(spec: TableSpec, date_from: date | None, date_to: date | None) -> tuple[str, list]:
    """Predicate on the partition column's own values (index-friendly) for a date window, both ends inclusive."""
    col = ident(spec.partition_column)
    clauses: list[str] = []
    params: list[date] = []
    if spec.partition_kind == "timestamp":
        if date_from:
            clauses.append(f"{col} >= %s")
            params.append(datetime.combine(date_from, datetime.min.time()))
        if date_to:
            clauses.append(f"{col} < %s")
            params.append(datetime.combine(date_to + timedelta(days=1), datetime.min.time()))
    else:
        if date_from:
            clauses.append(f"{col} >= %s")
            params.append(date_from)
        if date_to:
            clauses.append(f"{col} <= %s")
            params.append(date_to)
    return " and ".join(clauses), params


def partitions_where(spec: TableSpec, partitions: list[str], where: str, params: list) -> tuple[str, list]:
    """`where` narrowed to these partitions ('YYYY-MM-DD', or 'None' for rows without a partition value): a
    range on the partition column's own values (index-friendly) and the dates themselves."""
    days = sorted(date.fromisoformat(p) for p in partitions if p != "None")
    clauses = []
    if days:
        range_where, range_params = window(spec, days[0], days[-1])
        clauses.append(f"({range_where} and {partition_sql(spec)} in ({', '.join(['%s'] * len(days))}))")
        params = [*params, *range_params, *days]
    if "None" in partitions:
        clauses.append(f"{ident(spec.partition_column)} is null")
    narrowed = " or ".join(clauses)
    return (f"({where}) and ({narrowed})" if where else narrowed), params


def partition_sql(spec: TableSpec) -> str:
    return f"cast({ident(spec.partition_column)} as date)"


class Sides:
    """Runs the same logical query on both engines at once (DuckDB and psycopg release the GIL)."""

    def __init__(self, duck: Engine, pg: Engine):
        self.duck, self.pg = duck, pg
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile")
        self.queries = 0

    def both(self, fn):
        """fn(engine) on both engines concurrently → (duckdb result, postgres result)."""
        self.queries += 2
        pg_future = self.pool.submit(self._call, self.pg, fn)
        return self._call(self.duck, fn), pg_future.result()

    @staticmethod
    def _call(engine: Engine, fn):
        with engine.scan_settings():
            return fn(engine)

    def close(self):
        self.pool.shutdown(wait=True)
