"""What reconciliation compares: a TableSpec per raw table and published model (columns, key, partition,
measures, tolerance)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from evident.errors import ConfigError
from evident.fingerprint import Column
from evident.land.contracts import Contract
from evident.land.raw_tables import KEY_COLUMN, RawTable
from evident.land.sources import load_sources
from evident.project import Project, find_project


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


# Column kinds of the canonical row text (evident.fingerprint) by SQL type.
_KINDS = {"varchar": "text", "bigint": "int", "integer": "int", "boolean": "bool", "timestamp": "timestamp",
          "date": "date"}


def raw_spec(contract: Contract) -> TableSpec:
    """raw.<source>: the data columns (batch ids, land_seq and times describe how a row was landed in each
    engine, not what was delivered), partitioned by the contract's partition field, its decimals as measures."""
    table = RawTable(contract)
    columns = tuple(Column(c.name, "decimal" if c.sql_type.startswith("decimal") else _KINDS[c.sql_type.split("(")[0]])
                    for c in table.data_columns)
    measures = tuple(name for name, rule in contract.fields.items() if rule.type == "decimal")
    return TableSpec(table.name, columns, (KEY_COLUMN,), contract.partition_by, measures)


def table_specs(project: Project | None = None) -> dict[str, TableSpec]:
    """Every table reconciliation compares: each source's raw table and each published model."""
    from evident.publish.marts import MARTS

    marts = {m.name: m for m in MARTS}
    raws = [raw_spec(source.contract) for source in load_sources(project or find_project()).values()]
    sessions = TableSpec("published.fct_sessions", marts["fct_sessions"].columns, marts["fct_sessions"].key,
                         "session_start", ("revenue",))
    # session_conversion_rate is rounded to 6 places in each engine: one unit of that rounding is accepted.
    metrics = TableSpec("published.fct_daily_metrics", marts["fct_daily_metrics"].columns,
                        marts["fct_daily_metrics"].key, "metric_date", ("metric_value",),
                        measure_tolerance=Decimal("0.000001"))
    return {s.name: s for s in (*raws, sessions, metrics)}


def resolve_tables(names: Sequence[str] | None, project: Project | None = None) -> list[TableSpec]:
    """Table specs by full or short name (`fct_sessions`); all of them when `names` is empty."""
    tables = table_specs(project)
    if not names:
        return list(tables.values())
    specs = []
    for name in names:
        match = [s for s in tables.values() if name in (s.name, s.short_name)]
        if not match:
            known = ", ".join(s.name for s in tables.values())
            raise ConfigError(f"unknown table {name!r} for reconcile (known: {known})")
        specs.append(match[0])
    return specs
