"""The tree shows the flow, and engine differences stay in the engines package (STYLE.md, the hardening issue).

These read the package's source: a new module that imports a driver, tests an engine's class or name, or
reaches into a driver connection outside evident/engines fails here, before a reviewer has to find it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python_ingest" / "evident"
STAGES = ("land", "build", "gate", "publish", "reconcile")
SHARED_LAYERS = ("engines", "control", "pipeline")

LEAKS = {
    "imports a database driver": re.compile(r"^\s*(import|from)\s+(duckdb|psycopg)\b", re.M),
    "tests an engine's class": re.compile(r"isinstance\([^)]*(DuckDBEngine|PostgresEngine)"),
    "tests an engine's name": re.compile(r"""\.name\s*[!=]=\s*["'](duckdb|postgres)["']"""),
    "reaches into a driver connection": re.compile(r"\.con\b(?!fig|text|tract|nect|st|vert|cat|sole)"),
}


def outside_engines() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "engines" not in p.relative_to(PACKAGE).parts)


def test_every_stage_and_shared_layer_is_a_subpackage():
    for name in STAGES + SHARED_LAYERS:
        assert (PACKAGE / name / "__init__.py").is_file(), f"evident/{name}/ is not a package"


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_no_code_outside_the_engines_package_branches_on_an_engine(leak):
    found = [f"{path.relative_to(PACKAGE)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0).strip()}"
             for path in outside_engines() for text in [path.read_text(encoding="utf-8")]
             for m in LEAKS[leak].finditer(text)]
    assert not found, f"outside evident/engines, code {leak}:\n" + "\n".join(found)


def test_the_control_plane_ddl_is_written_in_one_module():
    writers = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
               if re.search(r"create table if not exists evident\.", p.read_text(encoding="utf-8"))]
    assert writers == ["control/schema.py"]


def test_error_types_live_in_one_module():
    defining = sorted({p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                       if re.search(r"^class \w+\((\w*Error|\w*Exception|DataRejected|EvidentError)\)",
                                    p.read_text(encoding="utf-8"), re.M)})
    # faults.InjectedFault is the fault-injection tooling's own, raised only under EVIDENT_FAULT
    assert defining in (["errors.py"], ["errors.py", "faults.py"])


def test_tests_mirror_the_package():
    tests = Path(__file__).resolve().parent
    for name in STAGES:
        assert list((tests / name).glob("test_*.py")), f"tests/{name}/ has no tests"
