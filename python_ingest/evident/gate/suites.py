"""Which suites the gate runs, on which tables, and the baseline suite `evident suite init NAME` writes.

One suite per raw source (`raw_<source>`, validating raw.<source>) and one per published model (`<model>`,
validating the model's audited relation, analytics.<model>), JSON in expectations/gx/expectations/. Which
sources and models exist comes from the contracts (evident.land.sources) and dbt's manifest
(evident.build.manifest); nothing names a table here. A suite named like any other dbt model (stg_app_events)
validates that model too. A source or published model without a suite is a configuration error (exit 2)
naming it and the command that writes one.

Baselines (`evident suite init`):
- raw_<source>, from the source's highest contract version: the idempotency key unique, 64 characters, not
  null; every required field not null; string lengths and enums; integer, decimal and timestamp bounds
  (exclusive maxima as strict); land_seq and source_line ≥ 1. (Patterns stay with landing: GX has no regex on
  DuckDB.)
- <model>, from the model's enforced dbt contract and meta.evident: the key unique (one column or compound),
  every not_null column not null, accepted_values tests as enums. Ranges and identities that are not in the
  contract (amount ≥ 0, sums that must match another table) are for the engineer to add; the README says how.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from evident.build.manifest import (
    PublishedModel,
    identifier,
    load_manifest,
    model_nodes,
    published_models,
)
from evident.errors import ConfigError
from evident.land.contracts import Contract
from evident.land.raw_tables import KEY_COLUMN
from evident.land.sources import load_sources
from evident.project import Project

log = logging.getLogger(__name__)
RAW_PREFIX = "raw_"
NOT_GATE_SUITES = frozenset({"reconciliation"})  # validated against the reconciliation report, not a table


@dataclass(frozen=True)
class SuiteTarget:
    suite: str
    schema: str
    table: str
    subject: str  # what it audits, for messages: "raw source orders", "published model fct_orders_daily"


def suites_dir(project: Project) -> Path:
    return project.expectations_dir / "gx" / "expectations"


def existing_suites(gx_expectations: Path) -> set[str]:
    """Names of the suites stored in the GX project (one JSON per suite, named by the suite)."""
    names = set()
    for path in gx_expectations.glob("*.json"):
        try:
            names.add(str(json.loads(path.read_text(encoding="utf-8")).get("name") or path.stem))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"suite file {path} is not valid JSON: {exc}") from None
    return names


def gate_targets(project: Project, gx_expectations: Path | None = None) -> list[SuiteTarget]:
    """Every suite the gate runs and its table: raw sources, published models, then other dbt models with a
    suite. ConfigError (exit 2) naming every source or published model that has no suite."""
    gx_expectations = gx_expectations or suites_dir(project)
    have = existing_suites(gx_expectations)
    manifest = load_manifest(project)
    required = [SuiteTarget(f"{RAW_PREFIX}{name}", "raw", name, f"raw source {name}")
                for name in load_sources(project)]
    models = published_models(project, manifest)
    required += [SuiteTarget(m.name, m.schema, m.alias, f"published model {m.name}") for m in models.values()]
    missing = [t for t in required if t.suite not in have]
    if missing:
        lines = "\n".join(f"  {t.subject}: no suite {t.suite} — create it with `evident suite init {t.suite}`"
                          for t in missing)
        raise ConfigError(f"the gate needs a suite for every raw source and published model "
                          f"(in {gx_expectations}):\n{lines}")
    names = {t.suite for t in required}
    others = []
    for name, node in sorted(model_nodes(manifest).items()):
        if name in have and name not in names and name not in NOT_GATE_SUITES:
            others.append(SuiteTarget(name, identifier(node.get("schema"), f"model {name}: schema"),
                                      identifier(node.get("alias") or name, f"model {name}: alias"), f"model {name}"))
    orphans = sorted(have - names - {t.suite for t in others} - NOT_GATE_SUITES)
    if orphans:  # e.g. the suite of a source or model that was removed: kept, but it validates nothing
        log.warning("suite(s) %s match no raw source and no dbt model: not validated", ", ".join(orphans))
    return required + others


# ------------------------------------------------------------------------------------------ suite init


def baseline_expectations(project: Project, name: str) -> list[dict[str, Any]]:
    """The baseline expectations of suite `name` (GX JSON form: {"type", "kwargs"}); ConfigError when `name` is
    neither raw_<source> nor a published model."""
    sources = load_sources(project)
    if name.startswith(RAW_PREFIX) and name[len(RAW_PREFIX):] in sources:
        return raw_baseline(sources[name[len(RAW_PREFIX):]].contract)
    models = published_models(project)
    if name in models:
        return model_baseline(models[name])
    known = [f"{RAW_PREFIX}{s}" for s in sources] + list(models)
    raise ConfigError(f"no raw source or published model for a suite named {name!r} "
                      f"(suites the gate needs: {', '.join(known)})")


def _expect(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": {k: _json_value(v) for k, v in kwargs.items() if v is not None}}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def raw_baseline(contract: Contract) -> list[dict[str, Any]]:
    out = [_expect("expect_column_values_to_be_unique", column=KEY_COLUMN),
           _expect("expect_column_values_to_not_be_null", column=KEY_COLUMN),
           _expect("expect_column_value_lengths_to_equal", column=KEY_COLUMN, value=64)]
    out += [_expect("expect_column_values_to_not_be_null", column=n)
            for n, rule in contract.fields.items() if rule.required]
    for name, rule in contract.fields.items():
        if rule.type == "string":
            if rule.min_length is not None or rule.max_length is not None:
                out.append(_expect("expect_column_value_lengths_to_be_between", column=name,
                                   min_value=rule.min_length, max_value=rule.max_length))
            if rule.enum:
                out.append(_expect("expect_column_values_to_be_in_set", column=name, value_set=sorted(rule.enum)))
            # A pattern is not checked here: GX 1.24 computes no regex on DuckDB ("Regex is not supported for
            # dialect duckdb"), and the two engines share no regex syntax for a SQL check. Landing enforces it.
        elif rule.type in ("integer", "decimal", "timestamp", "date"):
            upper = rule.maximum_exclusive if rule.maximum_exclusive is not None else rule.maximum
            if rule.minimum is not None or upper is not None:
                out.append(_expect("expect_column_values_to_be_between", column=name, min_value=rule.minimum,
                                   max_value=upper,
                                   strict_max=True if rule.maximum_exclusive is not None else None))
    out += [_expect("expect_column_values_to_be_between", column=c, min_value=1) for c in ("land_seq", "source_line")]
    return out


def model_baseline(model: PublishedModel) -> list[dict[str, Any]]:
    if len(model.key) == 1:
        out = [_expect("expect_column_values_to_be_unique", column=model.key[0])]
    else:
        out = [_expect("expect_compound_columns_to_be_unique", column_list=list(model.key))]
    not_null = [c.name for c in model.columns if c.not_null or c.name in model.key]
    out += [_expect("expect_column_values_to_not_be_null", column=c) for c in not_null]
    out += [_expect("expect_column_values_to_be_in_set", column=c.name, value_set=list(c.accepted_values))
            for c in model.columns if c.accepted_values]
    return out


def write_baseline(project: Project, name: str, *, force: bool = False) -> tuple[Path, int]:
    """Write suite `name`'s baseline into the GX project (through GX, so the JSON is GX's own); returns the
    file and the number of expectations. ConfigError when it exists (unless force) or `name` is unknown."""
    import warnings

    from evident.config import temporary_environment

    expectations = baseline_expectations(project, name)
    folder = suites_dir(project)
    path = folder / f"{name}.json"
    if path.exists() and not force:
        raise ConfigError(f"suite {name} already exists ({path}); edit it, or pass --force to replace it with the "
                          "baseline")
    with temporary_environment({"GX_ANALYTICS_ENABLED": "false"}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        from evident.engines import gx_duckdb  # noqa: F401  registers the evident_duckdb datasource type

        context = gx.get_context(mode="file", project_root_dir=str(project.expectations_dir))
        suite = gx.ExpectationSuite(name=name, meta={"evident": "baseline written by `evident suite init`"})
        for e in expectations:
            suite.add_expectation_configuration(ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"]))
        context.suites.add_or_update(suite)
    return path, len(expectations)


def suite_summary(expectations: list[Mapping[str, Any]]) -> list[str]:
    return [f"{e['type']} {json.dumps(e['kwargs'], sort_keys=True)}" for e in expectations]
