"""The published models: name, grain and columns of each mart `evident publish` copies to published.*."""
from __future__ import annotations

from dataclasses import dataclass

from evident.fingerprint import Column


@dataclass(frozen=True)
class Mart:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]


MARTS = (
    Mart("fct_sessions", ("session_id",), (
        Column("session_id", "text"), Column("user_id", "int"), Column("session_start", "timestamp"),
        Column("session_end", "timestamp"), Column("event_count", "int"), Column("has_purchase", "bool"),
        Column("revenue", "decimal"))),
    Mart("fct_daily_metrics", ("metric_date", "metric_name"), (
        Column("metric_date", "date"), Column("metric_name", "text"), Column("metric_value", "decimal"))),
)
_TYPES = {"text": "varchar", "int": "bigint", "timestamp": "timestamp", "date": "date",
          "decimal": "decimal(38,6)", "bool": "boolean"}
_PUBLISHED_TYPES = {("fct_sessions", "user_id"): "bigint", ("fct_sessions", "event_count"): "integer",
                    ("fct_sessions", "revenue"): "decimal(18,2)"}


def published_ddl(mart: Mart) -> str:
    cols = ", ".join(f"{c.name} {_PUBLISHED_TYPES.get((mart.name, c.name), _TYPES[c.kind])} not null"
                     for c in mart.columns)
    # No primary key: the gate proves the grain, and DuckDB's index checks reject a delete and re-insert of
    # one key inside a transaction.
    return f"create table if not exists published.{mart.name} ({cols})"
