"""What reconciliation compares: a TableSpec per raw table and published model (columns, key, partition,
measures, tolerance)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from evident.errors import ConfigError
from evident.fingerprint import Column


@dataclass(frozen=True)
class TableSpec:
    name: str  # schema-qualified
    columns: tuple[Column, ...]  # compared columns (canonical text, in this order)
    key: tuple[str, ...]
    partition_column: str  # partition = its (UTC) date
    measures: tuple[str, ...]  # decimal columns summed exactly per partition
    measure_tolerance: Decimal = Decimal(0)  # max |duckdb - postgres| per measure value accepted

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def partition_kind(self) -> str:
        return self.column(self.partition_column).kind


def _table_specs() -> dict[str, TableSpec]:
    from evident.publish.marts import MARTS

    marts = {m.name: m for m in MARTS}
    raw = TableSpec(
        "raw.app_events",
        # The data columns: batch ids, land_seq and times describe how a row was landed in each engine.
        (Column("idempotency_key", "text"), Column("event_id", "text"), Column("user_id", "int"),
         Column("event_ts", "timestamp"), Column("event_type", "text"), Column("value", "decimal"),
         Column("app_version", "text"), Column("properties", "text"), Column("payload_sha256", "text")),
        ("idempotency_key",), "event_ts", ("value",))
    sessions = TableSpec("published.fct_sessions", marts["fct_sessions"].columns, marts["fct_sessions"].key,
                         "session_start", ("revenue",))
    # session_conversion_rate is rounded to 6 places in each engine: one unit of that rounding is accepted.
    metrics = TableSpec("published.fct_daily_metrics", marts["fct_daily_metrics"].columns,
                        marts["fct_daily_metrics"].key, "metric_date", ("metric_value",),
                        measure_tolerance=Decimal("0.000001"))
    return {s.name: s for s in (raw, sessions, metrics)}


TABLES = _table_specs()


def resolve_tables(names: Sequence[str] | None) -> list[TableSpec]:
    """Table specs by full or short name (`fct_sessions`); all of them when `names` is empty."""
    if not names:
        return list(TABLES.values())
    specs = []
    for name in names:
        match = [s for s in TABLES.values() if name in (s.name, s.short_name)]
        if not match:
            known = ", ".join(s.name for s in TABLES.values())
            raise ConfigError(f"unknown table {name!r} for reconcile (known: {known})")
        specs.append(match[0])
    return specs
