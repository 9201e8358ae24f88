"""The GX context a gate runs in: the committed file project's suites, stores and datasources, with the
validation definitions and checkpoints derived for this run — never hand-maintained.

The file project (expectations/gx) holds what people write: the suites (gx/expectations/*.json), the stores,
the Data Docs site and one datasource per engine (`fluent_datasources` in great_expectations.yml, without
assets: connection placeholders only). For a gate, an in-memory context is made from that configuration: the
suites are read from, and the validation results and Data Docs written to, the project's own folders;
the datasources of the engines being gated are added with one table asset per suite target
(evident.gate.suites: raw.<source> for raw_<source>, the audited relation for a model's suite), one
`whole_table` batch definition each, a validation definition `<engine>__<suite>` per target and one
checkpoint `gate_<engine>` per engine (result format SUMMARY, no actions). Those live in memory only, so a new
source or published model needs nothing but its suite, and nothing in git changes when the gate runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from evident.errors import ConfigError
from evident.gate.suites import SuiteTarget

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 10}
_DERIVED_STORES = ("checkpoint_store", "validation_definition_store")  # kept in memory


def _project_config(gx_dir: Path) -> dict[str, Any]:
    path = gx_dir / "great_expectations.yml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the GX project {path}: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("stores"), dict):
        raise ConfigError(f"{path} has no `stores` section")
    return config


def datasource_configs(gx_dir: Path) -> dict[str, dict[str, Any]]:
    """Engine name → its datasource's configuration in great_expectations.yml (type, connection placeholder…)."""
    sources = _project_config(gx_dir).get("fluent_datasources") or {}
    return {name: {k: v for k, v in config.items() if k not in ("assets", "id", "name")}
            for name, config in sources.items()}


def gate_context(gx_dir: Path, engines: Sequence[str], targets: Sequence[SuiteTarget]
                 ) -> tuple[Any, dict[str, list[tuple[str, str]]]]:
    """An in-memory GX context over the file project at gx_dir, with a checkpoint gate_<engine> per engine;
    and per engine the (suite, error) of every target that could not be set up (a missing table, an unreachable
    server): the gate reports those as failed checks instead of validating them."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import DataContextConfig

    config = _project_config(gx_dir)
    stores = {}
    for name, store in config["stores"].items():
        store = dict(store)
        if name in _DERIVED_STORES:
            store["store_backend"] = {"class_name": "InMemoryStoreBackend"}
        else:
            store["store_backend"] = _absolute(gx_dir, store.get("store_backend"))
        stores[name] = store
    sites = {name: {**site, "store_backend": _absolute(gx_dir, site.get("store_backend"))}
             for name, site in (config.get("data_docs_sites") or {}).items()}
    context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        config_version=config.get("config_version", 4.0), stores=stores,
        expectations_store_name=config.get("expectations_store_name", "expectations_store"),
        validation_results_store_name=config.get("validation_results_store_name", "validation_results_store"),
        checkpoint_store_name=config.get("checkpoint_store_name", "checkpoint_store"),
        data_docs_sites=sites, analytics_enabled=False, progress_bars=config.get("progress_bars")))
    datasources = datasource_configs(gx_dir)
    failures = {}
    for engine in engines:
        if engine not in datasources:
            raise ConfigError(f"{gx_dir / 'great_expectations.yml'} declares no datasource {engine!r} "
                              "under fluent_datasources")
        failures[engine] = _add_engine(context, engine, dict(datasources[engine]), targets)
    return context, failures


def _absolute(gx_dir: Path, backend: Any) -> dict[str, Any]:
    backend = dict(backend or {})
    if "base_directory" in backend:
        backend["base_directory"] = str((gx_dir / backend["base_directory"]).resolve())
    return backend


def _add_engine(context: Any, engine: str, datasource: dict[str, Any], targets: Sequence[SuiteTarget]
                ) -> list[tuple[str, str]]:
    import great_expectations as gx

    kind = datasource.pop("type")
    add = getattr(context.data_sources, f"add_{kind}", None)
    if add is None:
        raise ConfigError(f"GX has no datasource type {kind!r} (datasource {engine})")
    try:
        source = add(name=engine, **datasource)  # GX tests the connection here
    except Exception as exc:
        return [(t.suite, _cause(exc)) for t in targets]
    definitions, failures = [], []
    for target in targets:
        try:  # GX checks here that the table exists
            asset = source.add_table_asset(target.suite, table_name=target.table, schema_name=target.schema)
        except Exception as exc:
            failures.append((target.suite, f"{target.schema}.{target.table}: {_cause(exc)}"))
            continue
        batch = asset.add_batch_definition_whole_table("whole_table")
        suite = context.suites.get(target.suite)
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{engine}__{target.suite}", data=batch, suite=suite)))
    if definitions:
        context.checkpoints.add(gx.Checkpoint(name=f"gate_{engine}", validation_definitions=definitions,
                                              result_format=RESULT_FORMAT, actions=[]))
    return failures


def _cause(exc: BaseException) -> str:
    """The innermost message of GX's chain of wrapped errors (TestConnectionError → … → the driver's)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"
