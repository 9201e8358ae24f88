"""The Data Docs site of the gate: suites and stored validation results, rendered from the GX file project."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from evident.config import temporary_environment
from evident.errors import ConfigError
from evident.retention import prune_oldest_dirs
from evident.secrets import redact

log = logging.getLogger(__name__)
KEEP_VALIDATION_RUNS = 20  # GX validation results kept per suite (for Data Docs)


def build_data_docs(project_dir: str | os.PathLike[str]) -> Path:
    """Rebuild the Data Docs site from the suites and the stored validation results (validates nothing).

    For `make docs`; returns the index page. Works on a fresh clone too (then the site shows the suites only).
    """
    project = Path(project_dir)
    if not (project / "gx" / "great_expectations.yml").is_file():
        raise ConfigError(f"no Great Expectations project at {project}/gx (great_expectations.yml missing)")
    with temporary_environment({"GX_ANALYTICS_ENABLED": "false"}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx

        from evident.gate import gx_duckdb  # noqa: F401  registers the evident_duckdb datasource type

        context = gx.get_context(mode="file", project_root_dir=str(project))
        prune_validation_results(project)
        index = render_data_docs(context, project)
    if index is None:
        raise ConfigError(f"GX built no Data Docs index under {project}/gx/uncommitted/data_docs")
    return index


def render_data_docs(context: Any, project: Path) -> Path | None:
    """Render the local Data Docs site; a rendering problem is logged, never a failed gate."""
    try:
        context.build_data_docs()
    except Exception as exc:
        log.warning(redact(f"could not build the Data Docs site: {exc}"))
    index = project / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    return index if index.is_file() else None


def prune_validation_results(project: Path, keep: int = KEEP_VALIDATION_RUNS) -> int:
    """Delete all but the newest `keep` stored runs of each suite (GX's store: validations/<suite>/<run>/…).

    Returns how many run folders were removed. Only folders GX created under uncommitted/ are touched.
    """
    root = project / "gx" / "uncommitted" / "validations"
    suites = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    return sum(prune_oldest_dirs(suite, keep) for suite in suites)
