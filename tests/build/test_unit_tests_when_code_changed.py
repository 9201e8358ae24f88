"""dbt's unit tests run when the code they test changed (evident.build.step): on a full refresh and on the first
build of each version of the dbt project; an incremental build of code that passed them before skips them.
Real `evident build` runs in a project copy, on DuckDB."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evident.sample import generate_sample
from tests.helpers import make_project, project_settings, query, run_cli


@pytest.fixture
def settings(tmp_path: Path):
    return project_settings(make_project(tmp_path / "project"))


def build(settings, *args: str) -> tuple[str, list[str]]:
    """`evident build`: what it printed, and the unit tests that ran (from its run_results.json)."""
    result = run_cli(settings, "build", *args)
    [(artifacts,)] = query(settings, "duckdb", "select artifacts_dir from evident.builds order by built_at desc "
                                               "limit 1")
    results = json.loads((settings.project.root / artifacts / "run_results.json").read_text())
    unit_tests = sorted(r["unique_id"] for r in results["results"] if r["unique_id"].startswith("unit_test."))
    return result.stdout + result.stderr + f"\nexit {result.returncode}", unit_tests


def land_more(settings, seed: int) -> None:
    generate_sample(settings.landing_dir / f"batch-{seed}", events=60, days=1, seed=seed)
    assert run_cli(settings, "land").returncode == 0


def test_unit_tests_run_for_new_code_and_are_skipped_for_code_that_passed_them(settings):
    land_more(settings, 1)
    out, first = build(settings)
    assert "exit 0" in out and "unit tests skipped" not in out
    assert len(first) >= 8, first  # every unit test of the project

    land_more(settings, 2)
    out, again = build(settings)
    assert "exit 0" in out and again == [] and "unit tests skipped: unchanged code passed them before" in out

    model = settings.project.dbt_project_dir / "models" / "marts" / "fct_sessions.sql"
    model.write_text(model.read_text() + "\n-- a comment is a change of the code\n")
    land_more(settings, 3)
    out, changed = build(settings)
    assert "exit 0" in out and changed == first

    out, full = build(settings, "--full-refresh")
    assert "exit 0" in out and full == first  # a full refresh always runs them
    [(tested,)] = query(settings, "duckdb", "select count(distinct unit_tested_code) from evident.builds")
    assert tested == 2  # the two versions of the code that passed them


def test_a_broken_expectation_is_run_and_fails_the_build(settings):
    land_more(settings, 4)
    assert "exit 0" in build(settings)[0]
    tests = settings.project.dbt_project_dir / "models" / "marts" / "_marts__unit_tests.yml"
    text = tests.read_text()
    broken = text.replace("cast(0.007813 as decimal(38,6))", "cast(0.007812 as decimal(38,6))", 1)
    assert broken != text, "the fixture changed: pick another expectation to break"
    tests.write_text(broken)
    land_more(settings, 5)
    out, ran = build(settings)
    assert "exit 1" in out and "conversion_rate_rounding" in out and ran
    [(success, tested)] = query(settings, "duckdb", "select success, unit_tested_code from evident.builds "
                                                    "order by built_at desc limit 1")
    assert (success, tested) == (False, None)
