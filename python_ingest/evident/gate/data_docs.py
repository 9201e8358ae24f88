"""The Data Docs site of the gate: suites and stored validation results, rendered from the GX file project.

GX renders the site (expectations/gx/uncommitted/data_docs/local_site/, git-ignored) from the suites and the
stored validation results. Its pages load jQuery, Bootstrap, bootstrap-table, Font Awesome and more from
CDNs, so offline the index shows bare links and no tables. After every render, make_offline copies the few
files those pages need (data_docs_assets/, unmodified copies from npm; versions and licences in its README)
into the site and points each page at them with a relative path, so the site opens from disk with no network.
"""
from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

from evident.config import temporary_environment
from evident.errors import ConfigError
from evident.retention import prune_oldest_dirs
from evident.secrets import redact

log = logging.getLogger(__name__)
KEEP_VALIDATION_RUNS = 20  # GX validation results kept per suite (for Data Docs)

ASSETS_DIR = Path(__file__).resolve().parent / "data_docs_assets"
SITE_ASSETS_DIR = Path("static") / "vendor"  # where the assets go inside the site

# Every CDN address in GX 1.24.1's page templates (render/view/templates: page.j2, index_page.j2,
# js_script_imports.j2, …) → its copy under data_docs_assets/.
CDN_ASSETS = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/popper.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/bootstrap-table-filter-control.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
}
# Not vendored: dark colours when the system prefers them (the pages stay light without it) …
DROPPED_ASSETS = frozenset({
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
})
# … and the chart libraries (~830 KB), only used by pages with a chart block, which Evident's suites never make.
CHART_SCRIPTS = frozenset({
    "https://cdn.jsdelivr.net/npm/vega@5",
    "https://cdn.jsdelivr.net/npm/vega-lite@5",
    "https://cdn.jsdelivr.net/npm/vega-embed@6",
})
# The header logo comes from GX's bucket (with the data context id in the query); the site holds a copy.
GX_IMAGES_URL = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

_ASSET_TAG = re.compile(r"<(script|link|img)\b[^>]*>(?:\s*</script>)?", re.IGNORECASE)
_URL_ATTR = re.compile(r"""(?<![\w-])(src|href)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
# A file:// page cannot load a file with CORS (crossorigin, and so integrity): the local copies go without.
_CORS_ATTRS = re.compile(r"""\s+(?:integrity|crossorigin)\s*=\s*(["']).*?\1""", re.IGNORECASE | re.DOTALL)
_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)


def build_data_docs(project_dir: str | os.PathLike[str]) -> Path:
    """Rebuild the Data Docs site from the suites and the stored validation results (validates nothing).

    For `evident docs`; returns the index page, which opens from disk. Works on a fresh clone too (then the
    site shows the suites only).
    """
    project = Path(project_dir)
    if not (project / "gx" / "great_expectations.yml").is_file():
        raise ConfigError(f"no Great Expectations project at {project}/gx (great_expectations.yml missing)")
    with temporary_environment({"GX_ANALYTICS_ENABLED": "false"}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx

        from evident.engines import gx_duckdb  # noqa: F401  registers the evident_duckdb datasource type

        context = gx.get_context(mode="file", project_root_dir=str(project))
        prune_validation_results(project)
        index = render_data_docs(context, project)
    if index is None:
        raise ConfigError(f"GX built no Data Docs index under {project}/gx/uncommitted/data_docs")
    return index


def render_data_docs(context: Any, project: Path) -> Path | None:
    """Render the local Data Docs site and make it open offline; a rendering problem is logged, never a
    failed gate."""
    try:
        context.build_data_docs()
    except Exception as exc:
        log.warning(redact(f"could not build the Data Docs site: {exc}"))
    index = project / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    if not index.is_file():
        return None
    try:
        remote = make_offline(index.parent)
    except OSError as exc:
        log.warning(redact(f"could not make the Data Docs site work offline: {exc}"))
    else:
        if remote:
            log.warning("Data Docs: %d reference(s) still need the network, e.g. %s", len(remote), remote[0])
    return index


def make_offline(site: Path) -> list[str]:
    """Copy the vendored assets into `site` and point every page at them instead of the CDNs.

    Idempotent (GX rewrites the pages on each render; a page already rewritten is left as it is). Returns the
    references that still need the network, as "page: address" (empty when the whole site works offline).
    """
    target = site / SITE_ASSETS_DIR
    shutil.copytree(ASSETS_DIR, target, dirs_exist_ok=True)
    remote: list[str] = []
    for page in sorted(site.rglob("*.html")):
        if target in page.parents:
            continue
        text = page.read_text(encoding="utf-8")
        new, left = localize_page(text, page.parent, site)
        if new != text:
            page.write_text(new, encoding="utf-8")
        remote += [f"{page.relative_to(site).as_posix()}: {url}" for url in left]
    return remote


def localize_page(text: str, page_dir: Path, site: Path) -> tuple[str, list[str]]:
    """One page's HTML with its CDN assets pointed at the site's copies; and the remote references left."""
    assets = _relative(site / SITE_ASSETS_DIR, page_dir)
    images = site / "static" / "images"
    has_charts = "vegaEmbed(" in text
    left: list[str] = []

    def replace(match: re.Match[str]) -> str:
        tag = match.group(0)
        attr = _URL_ATTR.search(tag)
        if attr is None or not _REMOTE.match(attr.group(3)):
            return tag
        url = attr.group(3).strip()
        local = None
        if url in CDN_ASSETS:
            local = f"{assets}/{CDN_ASSETS[url]}"
        elif url in DROPPED_ASSETS or (url in CHART_SCRIPTS and not has_charts):
            return ""
        elif url.startswith(GX_IMAGES_URL):
            name = url[len(GX_IMAGES_URL):].split("?", 1)[0]
            if name and (images / name).is_file():
                local = f"{_relative(images, page_dir)}/{name}"
        if local is None:
            if match.group(1).lower() != "link" or re.search(r"stylesheet|icon", tag, re.IGNORECASE):
                left.append(url)
            return tag
        return _CORS_ATTRS.sub("", tag[: attr.start(3)] + local + tag[attr.end(3):])

    return _ASSET_TAG.sub(replace, text), left


def _relative(target: Path, start: Path) -> str:
    return posixpath.join(*Path(os.path.relpath(target, start)).parts)


def prune_validation_results(project: Path, keep: int = KEEP_VALIDATION_RUNS) -> int:
    """Delete all but the newest `keep` stored runs of each suite (GX's store: validations/<suite>/<run>/…).

    Returns how many run folders were removed. Only folders GX created under uncommitted/ are touched.
    """
    root = project / "gx" / "uncommitted" / "validations"
    suites = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    return sum(prune_oldest_dirs(suite, keep) for suite in suites)
