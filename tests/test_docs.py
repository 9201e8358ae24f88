"""`evident docs` from disk: both sites open in headless Chromium over file:// with every host name unresolvable,
and the DOM their scripts render shows the models (dbt) and the suites with the run's results (Data Docs).

The project is a copy (dbt_project, profiles, contracts, the GX project without uncommitted/), so the sites,
GX's stored results and dbt's folders of this test stay out of the work tree. The pipeline is the real one,
in this process: `evident docs` on the fresh copy, then sample → `evident land`, `build`, `gate` (DuckDB; the
gate stores its results) → `evident docs` again.

Without Chromium the browser tests skip, except under CI (CI=true or 1), where they fail: .ci/run installs it.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evident.cli import main
from evident.config import load_settings
from evident.control.lock import RunLock
from evident.errors import EXIT_OK, EXIT_TEMPORARY
from evident.gate.data_docs import ASSETS_DIR, CDN_ASSETS, CHART_SCRIPTS, DROPPED_ASSETS, GX_IMAGES_URL
from evident.project import find_project
from evident.sample import generate_sample
from tests.conftest import in_ci
from tests.helpers import query

REPO_PROJECT = find_project()
MODELS = ("stg_app_events", "fct_sessions", "fct_daily_metrics")
SUITES = ("raw_app_events", "stg_app_events", "fct_sessions", "fct_daily_metrics")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RUN_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\b")


# ------------------------------------------------------------------------------------------ browser


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    reason = "headless Chromium is not installed (apt-get install chromium; .ci/run installs it)"
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()


@dataclass
class Row:
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)

    @property
    def text(self) -> str:
        return " ".join(self.parts)


class Dom(HTMLParser):
    """A page as the browser left it: its elements, its table rows and its text (scripts and styles left out)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.rows: list[Row] = []
        self._open_rows: list[Row] = []
        self._parts: list[str] = []
        self._skip = 0
        self.feed(html)
        self.close()
        self.text = " ".join(self._parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "tr":
            self._open_rows.append(Row(values))
        for row in self._open_rows:
            row.classes.update(values.get("class", "").split())

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        for row in self._open_rows:
            row.classes.update(values.get("class", "").split())

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "tr" and self._open_rows:
            self.rows.append(self._open_rows.pop())

    def handle_data(self, data: str) -> None:
        words = " ".join(data.split())
        if self._skip or not words:
            return
        self._parts.append(words)
        for row in self._open_rows:
            row.parts.append(words)


@dataclass
class Rendered:
    dom: Dom
    console: list[str]  # what the page logged (errors included)


def render(chromium: str, url: str) -> Rendered:
    """The DOM after the page's scripts ran, in headless Chromium, offline: every host name fails to resolve."""
    with tempfile.TemporaryDirectory(prefix="evident-chromium-") as profile:
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
             "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "<html" in done.stdout, f"chromium failed on {url}:\n{done.stderr[-3000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(Dom(done.stdout), console)


def uncaught(rendered: Rendered) -> list[str]:
    return [line for line in rendered.console if "Uncaught" in line or "blocked by CORS" in line]


# ------------------------------------------------------------------------------------------ pipeline


@dataclass
class Docs:
    output: str
    dbt_page: Path
    data_docs_index: Path
    dbt_html: str  # the dbt page as written then (a later `evident docs` rewrites it) …
    data_docs_copy: Path  # … and a copy of the Data Docs site as it was then


@dataclass
class Workspace:
    project: Path
    duckdb_path: Path
    landing_dir: Path
    fresh: Docs | None = None
    after_run: Docs | None = None
    run_id: str = ""
    run_output: str = ""


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(args))
    return code, out.getvalue()


def _docs(ws: Workspace, name: str) -> Docs:
    code, output = _cli("docs")
    assert code == EXIT_OK, output
    dbt_page = ws.project / "target" / "docs" / "static_index.html"
    data_docs = ws.project / "expectations" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert f"dbt docs: {dbt_page}" in output and f"Data Docs: {data_docs}" in output, output
    copy = ws.project.parent / "sites" / name
    shutil.copytree(data_docs.parent, copy)
    return Docs(output, dbt_page, data_docs, dbt_page.read_text(encoding="utf-8"), copy / "index.html")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A copy of the project; `evident docs` before anything ran, then land, build and gate a small sample, then
    docs again."""
    root = tmp_path_factory.mktemp("docs")
    project = root / "project"
    ignore = shutil.ignore_patterns("uncommitted", "target", "logs", "dbt_packages", ".user.yml", "__pycache__")
    for part in ("dbt_project", "profiles", "python_ingest/contracts", "expectations"):
        shutil.copytree(REPO_PROJECT.root / part, project / part, ignore=ignore)
    ws = Workspace(project, root / "warehouse" / "warehouse.duckdb", root / "landing")
    with pytest.MonkeyPatch.context() as env:
        for name in ("EVIDENT_POSTGRES_DSN", "EVIDENT_CHECK_SINCE_LAND_SEQ", "EVIDENT_LAND_WORKERS"):
            env.delenv(name, raising=False)
        env.setenv("EVIDENT_PROJECT_DIR", str(project))
        env.setenv("EVIDENT_DUCKDB_PATH", str(ws.duckdb_path))
        env.setenv("EVIDENT_LANDING_DIR", str(ws.landing_dir))

        ws.fresh = _docs(ws, "fresh")
        assert not ws.duckdb_path.exists() and not ws.duckdb_path.parent.exists()

        generate_sample(ws.landing_dir, events=300, days=2, seed=11)
        for step in ("land", "build", "gate"):
            code, output = _cli(step)
            ws.run_output += output
            assert code == EXIT_OK, ws.run_output
        (ws.run_id,), = query(load_settings(), "duckdb", "select distinct run_id from evident.gate_results")

        ws.after_run = _docs(ws, "after_run")
        yield ws


# ------------------------------------------------------------------------------------------ dbt docs


def _nav_models(rendered: Rendered) -> set[str]:
    """Models in the navigation tree: the app renders these links from the manifest embedded in the page."""
    return {attrs["data-nav-unique-id"].removeprefix("model.evident.")
            for tag, attrs in rendered.dom.elements
            if tag == "a" and attrs.get("data-nav-unique-id", "").startswith("model.evident.")}


def test_dbt_docs_render_the_models_from_disk(workspace, chromium):
    page = workspace.after_run.dbt_page
    assert page.name == "static_index.html"
    overview = render(chromium, page.as_uri())
    assert set(MODELS) <= _nav_models(overview), overview.dom.text[:2000]
    assert {"Sources", "Projects"} <= set(overview.dom.text.split()), overview.dom.text[:2000]
    assert not uncaught(overview), overview.console

    # A model's page, with the catalog read from the warehouse: column types as DuckDB names them
    # (the model's YAML writes them in lower case) and the relation in the warehouse's catalog.
    model = render(chromium, f"{page.as_uri()}#!/model/model.evident.fct_sessions")
    text = model.dom.text
    assert "fct_sessions" in text and "session_id" in text, text[:2000]
    assert "VARCHAR" in text and "DECIMAL(18,2)" in text, text[:3000]
    assert "warehouse.analytics.fct_sessions" in text, text[:3000]
    assert not uncaught(model), model.console


def test_dbt_docs_before_any_run_list_the_models_and_create_no_warehouse(workspace, chromium, tmp_path):
    page = tmp_path / "static_index.html"  # the page as the first `evident docs` wrote it
    page.write_text(workspace.fresh.dbt_html, encoding="utf-8")
    rendered = render(chromium, page.as_uri())
    assert set(MODELS) <= _nav_models(rendered), rendered.dom.text[:2000]
    assert not uncaught(rendered), rendered.console


# ------------------------------------------------------------------------------------------ Data Docs


def _suite_sizes(project: Path) -> dict[str, int]:
    folder = project / "expectations" / "gx" / "expectations"
    return {s: len(json.loads((folder / f"{s}.json").read_text(encoding="utf-8"))["expectations"]) for s in SUITES}


def test_data_docs_render_the_suites_and_the_runs_results_from_disk(workspace, chromium):
    index = workspace.after_run.data_docs_index
    run_id = workspace.run_id
    rendered = render(chromium, index.as_uri())
    rows = rendered.dom.rows  # bootstrap-table renders them from data inside the page's scripts

    # Validation results: one row per suite for this run, with the success icon, the run's name and time.
    for suite in SUITES:
        mine = [r for r in rows if r.attrs.get("data-href", "").startswith(f"validations/{suite}/{run_id}/")]
        assert len(mine) == 1, (suite, [r.attrs for r in rows])
        row = mine[0]
        assert "ge-success-icon" in row.classes and "fa-check-circle" in row.classes, row
        assert run_id in row.text and suite in row.text and RUN_TIME.search(row.text), row.text
    # Expectation suites: every suite listed, linking to its page.
    listed = {r.attrs.get("data-href") for r in rows}
    assert {f"expectations/{s}.html" for s in SUITES} <= listed, listed
    assert not uncaught(rendered), rendered.console

    # Each suite's result page: succeeded, every expectation evaluated, each with its success icon.
    sizes = _suite_sizes(workspace.project)
    for suite in SUITES:
        (href,) = [r.attrs["data-href"] for r in rows
                   if r.attrs.get("data-href", "").startswith(f"validations/{suite}/{run_id}/")]
        page = render(chromium, (index.parent / href).as_uri())
        assert not uncaught(page), page.console
        text = page.dom.text
        assert "Status: Succeeded" in text and f"Expectation Suite: {suite}" in text, text[:2000]
        assert f"Evaluated Expectations {sizes[suite]}" in text, text[:2000]
        assert f"Successful Expectations {sizes[suite]}" in text, text[:2000]
        checked = [r for r in page.dom.rows if "data-index" in r.attrs and "fa-check-circle" in r.classes]
        assert len(checked) == sizes[suite], (suite, len(checked), sizes[suite])


def test_data_docs_before_any_run_list_the_suites(workspace, chromium):
    rendered = render(chromium, workspace.fresh.data_docs_copy.as_uri())
    assert not uncaught(rendered), rendered.console
    links = {r.attrs.get("data-href", "") for r in rendered.dom.rows}
    assert {f"expectations/{s}.html" for s in SUITES} <= links, links
    assert not any(link.startswith("validations/") for link in links), links
    suite = render(chromium, (workspace.fresh.data_docs_copy.parent / "expectations" / "fct_sessions.html").as_uri())
    assert "fct_sessions" in suite.dom.text and "session_id" in suite.dom.text, suite.dom.text[:2000]


_ASSET_REF = re.compile(r"""<(script|link|img)\b[^>]*?(?<![\w-])(?:src|href)\s*=\s*["']([^"']*)["']""",
                        re.IGNORECASE)


def test_no_page_of_either_site_loads_anything_from_the_network(workspace):
    site = workspace.after_run.data_docs_index.parent
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 1 + 2 * len(SUITES)  # index, suites, results
    remote = []
    for page in [*pages, workspace.after_run.dbt_page]:
        for tag, url in _ASSET_REF.findall(page.read_text(encoding="utf-8")):
            if re.match(r"\s*(?:https?:)?//", url):
                remote.append(f"{page.relative_to(workspace.project)}: <{tag}> {url}")
    assert not remote, remote
    assert (site / "static" / "vendor" / "jquery" / "jquery.min.js").is_file()
    assert (site / "static" / "vendor" / "README.md").is_file()  # versions and licences travel with the copy


def test_docs_exit_75_while_a_run_holds_the_warehouse(workspace):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EVIDENT_PROJECT_DIR", str(workspace.project))
        env.setenv("EVIDENT_DUCKDB_PATH", str(workspace.duckdb_path))
        with RunLock(workspace.duckdb_path, None, "20261201T000000-abcdef", "run"):
            code, output = _cli("docs")
    assert code == EXIT_TEMPORARY, output
    assert "20261201T000000-abcdef" in output, output


# ------------------------------------------------------------------------------------------ GX templates


def test_every_cdn_address_in_gxs_templates_is_vendored_or_dropped():
    """A GX upgrade that names other CDN files fails here, listing them (see data_docs_assets/README.md)."""
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    found = set()
    for template in templates.rglob("*.j2"):
        for _tag, url in _ASSET_REF.findall(template.read_text(encoding="utf-8")):
            if url.startswith(("http://", "https://", "//")):
                found.add(url)
    assert found, f"no CDN addresses found under {templates}: has GX moved its templates?"
    known = set(CDN_ASSETS) | DROPPED_ASSETS | CHART_SCRIPTS
    unknown = sorted(u for u in found - known if not u.startswith(GX_IMAGES_URL))
    assert not unknown, f"GX's templates load files Evident does not vendor: {unknown}"
    missing = [f for f in CDN_ASSETS.values() if not (ASSETS_DIR / f).is_file()]
    assert not missing, missing
