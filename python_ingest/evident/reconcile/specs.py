"""What reconciliation compares: a TableSpec per raw table (from its source's contract) and per published model
(from dbt's manifest, evident.build.manifest: columns, key, partition, measures, tolerance)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from evident.build.manifest import PublishedModel, published_models
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
    tolerance: Mapping[str, Decimal] = field(default_factory=dict)  # max |duckdb - postgres| accepted per measure

    @property
    def measure_tolerance(self) -> Decimal:
        """The largest tolerance of any measure (the report's threshold column)."""
        return max(self.tolerance.values(), default=Decimal(0))

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


def model_spec(model: PublishedModel) -> TableSpec:
    """published.<model>: its published columns, key, partition, measures and tolerance as meta.evident says."""
    return TableSpec(f"published.{model.name}", tuple(c.as_fingerprint_column() for c in model.columns), model.key,
                     model.partition_by, model.measures, dict(model.tolerance))


def table_specs(project: Project | None = None) -> dict[str, TableSpec]:
    """Every table reconciliation compares: each source's raw table and each published model."""
    project = project or find_project()
    raws = [raw_spec(source.contract) for source in load_sources(project).values()]
    models = [model_spec(m) for m in published_models(project).values()]
    return {s.name: s for s in (*raws, *models)}


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
