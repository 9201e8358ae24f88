"""The published models, as dbt's manifest declares them: `meta.evident` and the enforced contract of a model.

    models = published_models(project)            # {name: PublishedModel}, every model with publish: true
    models["fct_orders_daily"].key                 # ('order_date', 'status')

A model is published when its YAML says so (DESIGN, "Published models: declared in dbt"):

    config:
      contract: {enforced: true}                  # column names and types come from here
      meta:
        evident:
          publish: true
          key: [order_date, status]               # the grain
          partition_by: order_date                # a date/timestamp column: reconciliation windows
          measures: [orders, amount]              # exact sums compared across engines (optional)
          tolerance: {amount: 0.01}               # allowed cross-engine difference per measure (optional)
          audit_columns: [last_land_seq]          # contract columns left out of published.<model> (optional)

Nothing about a model is written in Python: publish, gate, reconcile and status all ask this module.

The manifest is dbt's own (`manifest.json`). Every `dbt build` writes one into its working folder
(target/work/<target>-<warehouse>/); the newest one is used when it is newer than every file of the dbt project.
Otherwise `dbt parse` writes a fresh one into target/manifest/ (in-process, ~2–4 s; the partial-parse cache
there makes a repeat cheaper). Names and types read from the manifest are untrusted input: model and column
names must be plain identifiers and types one of the exact types both engines fingerprint identically, or the
model is refused with ConfigError (exit 2) naming it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from evident.errors import ConfigError
from evident.fingerprint import Column
from evident.project import Project

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Exact types only: doubles and time zones print differently on the two engines (FACTS.md), so a published
# column of such a type could never reconcile. Spelling → (DDL type, fingerprint kind).
_TYPES = {
    "varchar": ("varchar", "text"), "text": ("varchar", "text"), "string": ("varchar", "text"),
    "character varying": ("varchar", "text"),
    "bigint": ("bigint", "int"), "int8": ("bigint", "int"),
    "integer": ("integer", "int"), "int": ("integer", "int"), "int4": ("integer", "int"),
    "smallint": ("smallint", "int"), "int2": ("smallint", "int"),
    "boolean": ("boolean", "bool"), "bool": ("boolean", "bool"),
    "date": ("date", "date"),
    "timestamp": ("timestamp", "timestamp"), "timestamp without time zone": ("timestamp", "timestamp"),
}
_DECIMAL = re.compile(r"(?:decimal|numeric)\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)")
# Files of the dbt project that do not change what dbt parses.
_NOT_SOURCES = {"target", "logs", "dbt_packages", "dbt_internal_packages"}
MANIFEST_KEYS = frozenset({"publish", "key", "partition_by", "measures", "tolerance", "audit_columns"})


@dataclass(frozen=True)
class ContractColumn:
    name: str
    data_type: str  # Evident's DDL vocabulary: varchar, bigint, integer, smallint, boolean, date, timestamp, decimal
    not_null: bool
    accepted_values: tuple[str, ...] | None = None  # from an accepted_values data test on the column, if any

    @property
    def kind(self) -> str:
        if self.data_type.startswith("decimal"):
            return "decimal"
        return next(kind for ddl, kind in _TYPES.values() if ddl == self.data_type)

    def as_fingerprint_column(self) -> Column:
        return Column(self.name, self.kind)


@dataclass(frozen=True)
class PublishedModel:
    name: str
    schema: str  # where dbt builds it (the audit area, analytics)
    alias: str
    columns: tuple[ContractColumn, ...]  # the published columns, contract order, audit columns left out
    key: tuple[str, ...]
    partition_by: str
    measures: tuple[str, ...] = ()
    tolerance: Mapping[str, Decimal] = field(default_factory=dict)
    audit_columns: tuple[str, ...] = ()

    @property
    def audited(self) -> str:
        """The audited relation, quoted: "analytics"."<alias>"."""
        return f"{quote(self.schema)}.{quote(self.alias)}"

    @property
    def published(self) -> str:
        return f"published.{quote(self.name)}"

    def column(self, name: str) -> ContractColumn:
        return next(c for c in self.columns if c.name == name)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise ConfigError(f"{what}: {value!r} is not a plain lowercase identifier (a-z, 0-9, _; at most 63 characters)")
    return value


def ddl_type(data_type: Any, what: str) -> str:
    """A contract data_type in Evident's DDL vocabulary; ConfigError for anything else."""
    text = " ".join(str(data_type or "").lower().split())
    if text in _TYPES:
        return _TYPES[text][0]
    match = _DECIMAL.fullmatch(text)
    if match and 0 < int(match[1]) <= 38 and int(match[2]) <= int(match[1]):
        return f"decimal({int(match[1])},{int(match[2])})"
    raise ConfigError(f"{what}: data_type {data_type!r} cannot be published; use one of varchar, bigint, integer, "
                      "smallint, boolean, date, timestamp or decimal(p,s) (exact types both engines fingerprint "
                      "identically)")


# ------------------------------------------------------------------------------------------ the manifest


def manifest_path(project: Project) -> Path:
    """A manifest.json at least as new as every file of the dbt project: the newest a build wrote, else one
    `dbt parse` writes now."""
    newest_source = _newest_source_mtime(project.dbt_project_dir)
    candidates = [p for p in (*project.target_dir.glob("work/*/manifest.json"),
                              project.target_dir / "manifest" / "manifest.json") if p.is_file()]
    fresh = [p for p in candidates if p.stat().st_mtime_ns >= newest_source]
    if fresh:
        return max(fresh, key=lambda p: p.stat().st_mtime_ns)
    return parse_manifest(project)


def _newest_source_mtime(folder: Path) -> int:
    newest = 0
    for path in folder.rglob("*"):
        if path.is_file() and not _NOT_SOURCES.intersection(path.relative_to(folder).parts):
            newest = max(newest, path.stat().st_mtime_ns)
    return newest


def parse_manifest(project: Project) -> Path:
    """`dbt parse` (in-process, no database connection) into target/manifest/; ConfigError if dbt cannot."""
    from evident.build.dbt import build_args, dbt_environment, invoke_dbt

    target_dir = project.target_dir / "manifest"
    # parse renders the profile but never connects: any DuckDB path will do
    env = dbt_environment("duckdb", project.target_dir / "manifest" / "unused.duckdb", None)
    args = ["--quiet", *build_args("duckdb", command="parse", target_dir=target_dir, project=project)]
    outcome = invoke_dbt("duckdb", args, env, target_dir / "run_results.json")
    path = target_dir / "manifest.json"
    if not outcome.success or not path.is_file():
        reasons = "; ".join(f.message for f in outcome.failures) or "no manifest.json written"
        raise ConfigError(f"dbt could not parse {project.dbt_project_dir}: {reasons}")
    return path


def load_manifest(project: Project) -> dict:
    path = manifest_path(project)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read dbt's manifest {path}: {exc}") from None


def published_models(project: Project, manifest: Mapping | None = None) -> dict[str, PublishedModel]:
    """Every model whose meta.evident says publish: true, by name (sorted)."""
    manifest = load_manifest(project) if manifest is None else manifest
    nodes = manifest.get("nodes") or {}
    tests = _accepted_values(nodes)
    models = {}
    for unique_id, node in sorted(nodes.items()):
        if node.get("resource_type") != "model":
            continue
        meta = model_meta(node)
        if not meta.get("publish"):
            continue
        model = _published_model(unique_id, node, meta, tests.get(unique_id, {}))
        models[model.name] = model
    return dict(sorted(models.items()))


def model_nodes(manifest: Mapping) -> dict[str, Mapping]:
    """Every model node by name."""
    return {n["name"]: n for n in (manifest.get("nodes") or {}).values() if n.get("resource_type") == "model"}


def model_meta(node: Mapping) -> dict:
    """meta.evident of a model node (dbt keeps config meta under config.meta; older manifests under meta)."""
    config_meta = (node.get("config") or {}).get("meta") or {}
    meta = config_meta.get("evident", (node.get("meta") or {}).get("evident"))
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise ConfigError(f"model {node.get('name')}: meta.evident must be a mapping, not {type(meta).__name__}")
    return dict(meta)


def _accepted_values(nodes: Mapping) -> dict[str, dict[str, tuple[str, ...]]]:
    """model unique_id → column → the values of its accepted_values data test."""
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for node in nodes.values():
        metadata = node.get("test_metadata") or {}
        if node.get("resource_type") != "test" or metadata.get("name") != "accepted_values":
            continue
        kwargs = metadata.get("kwargs") or {}
        column, values = node.get("column_name") or kwargs.get("column_name"), kwargs.get("values")
        attached = node.get("attached_node")
        if attached and isinstance(column, str) and isinstance(values, list):
            found.setdefault(attached, {})[column] = tuple(str(v) for v in values)
    return found


def contract_columns(node: Mapping, accepted: Mapping[str, tuple[str, ...]] | None = None
                     ) -> tuple[ContractColumn, ...]:
    """The enforced contract's columns of a model node (names validated, types in Evident's vocabulary)."""
    name = node.get("name")
    if not ((node.get("config") or {}).get("contract") or {}).get("enforced"):
        raise ConfigError(f"model {name} is published but its contract is not enforced: add "
                          "`config: {contract: {enforced: true}}` with a data_type per column to its YAML")
    columns = []
    for column in (node.get("columns") or {}).values():
        col = identifier(column.get("name"), f"model {name}: a column")
        not_null = any((c or {}).get("type") in ("not_null", "primary_key") for c in column.get("constraints") or [])
        columns.append(ContractColumn(col, ddl_type(column.get("data_type"), f"model {name}, column {col}"),
                                      not_null, (accepted or {}).get(col)))
    if not columns:
        raise ConfigError(f"model {name}: its contract declares no columns")
    return tuple(columns)


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be a list of column names")
    return tuple(identifier(v, what) for v in value)


def _published_model(unique_id: str, node: Mapping, meta: Mapping, accepted: Mapping) -> PublishedModel:
    name = identifier(node.get("name"), f"dbt model {unique_id}")
    what = f"model {name}: meta.evident"
    unknown = sorted(set(meta) - MANIFEST_KEYS)
    if unknown:
        raise ConfigError(f"{what} has unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(MANIFEST_KEYS))})")
    if meta.get("publish") is not True:
        raise ConfigError(f"{what}.publish must be true or false, not {meta.get('publish')!r}")
    every = contract_columns(node, accepted)
    by_name = {c.name: c for c in every}

    def declared(names: tuple[str, ...], key: str) -> tuple[str, ...]:
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(f"{what}.{key}: {', '.join(missing)} not in the model's contract "
                              f"(columns: {', '.join(by_name)})")
        return names

    audit = declared(_names(meta.get("audit_columns"), f"{what}.audit_columns"), "audit_columns")
    columns = tuple(c for c in every if c.name not in audit)
    published_names = {c.name for c in columns}
    key = declared(_names(meta.get("key"), f"{what}.key"), "key")
    if not key:
        raise ConfigError(f"{what}.key is required: the columns that identify a row (the grain)")
    partition = meta.get("partition_by")
    if partition is None:
        raise ConfigError(f"{what}.partition_by is required: a date or timestamp column (reconciliation windows)")
    partition = declared((identifier(partition, f"{what}.partition_by"),), "partition_by")[0]
    if by_name[partition].kind not in ("date", "timestamp"):
        raise ConfigError(f"{what}.partition_by: {partition} is {by_name[partition].data_type}, "
                          "not a date or timestamp")
    measures = declared(_names(meta.get("measures"), f"{what}.measures"), "measures")
    for measure in measures:
        if by_name[measure].kind not in ("int", "decimal"):
            raise ConfigError(f"{what}.measures: {measure} is {by_name[measure].data_type}, not an exact number")
    outside = [n for n in (*key, partition, *measures) if n not in published_names]
    if outside:
        raise ConfigError(f"{what}: {', '.join(outside)} cannot be an audit column and part of the key, "
                          "partition or measures")
    tolerance = _tolerance(meta.get("tolerance"), measures, what)
    return PublishedModel(name, identifier(node.get("schema"), f"model {name}: schema"),
                          identifier(node.get("alias") or name, f"model {name}: alias"), columns, key, partition,
                          measures, tolerance, audit)


def _tolerance(value: Any, measures: tuple[str, ...], what: str) -> dict[str, Decimal]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what}.tolerance must map measures to a number, e.g. {{amount: 0.01}}")
    tolerance = {}
    for measure, amount in value.items():
        if measure not in measures:
            raise ConfigError(f"{what}.tolerance: {measure!r} is not one of the measures ({', '.join(measures)})")
        try:
            number = Decimal(str(amount))
        except InvalidOperation:
            number = Decimal(-1)
        if not number.is_finite() or number < 0 or isinstance(amount, bool):
            raise ConfigError(f"{what}.tolerance.{measure}: {amount!r} is not a number ≥ 0")
        tolerance[measure] = number
    return tolerance
