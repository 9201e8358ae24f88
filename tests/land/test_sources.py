"""Sources: contract files by name and version, routing by `landing` glob, and which version changes a raw table
can absorb in place (evident.land.sources, evident.land.evolution)."""
from __future__ import annotations

from pathlib import Path

import pytest

from evident.errors import ContractError
from evident.land.contracts import load_contract
from evident.land.evolution import changes
from evident.land.sources import glob_regex

BASE = """name: s
version: VERSION
format: jsonl
idempotency_key: [k]
partition_by: at
fields:
  k:  {type: string, required: true}
  at: {type: timestamp, required: true}
  n:  {type: integer, minimum: 0, maximum: 10}
  e:  {type: string, enum: [a, b]}
"""


def contract(tmp_path: Path, version: int, text: str):
    path = tmp_path / f"s.v{version}.yml"
    path.write_text(text.replace("VERSION", str(version)), encoding="utf-8")
    return load_contract("s", version, path=path)


@pytest.mark.parametrize("pattern, path, owned", [
    ("orders/**", "orders/2026-03-01/part-0000.csv", True),
    ("orders/**", "orders.csv", False),
    ("orders/**", "orders_old/a.csv", False),
    ("orders/*.csv", "orders/a/b.csv", False),
    ("**/*.csv", "a/b/c.csv", True),
    ("**/*.csv", "c.csv", True),
    ("in/?.jsonl", "in/a.jsonl", True),
    ("in/?.jsonl", "in/ab.jsonl", False),
])
def test_a_landing_glob_matches_paths_relative_to_the_landing_dir(pattern, path, owned):
    assert (glob_regex(pattern).fullmatch(path) is not None) == owned


@pytest.mark.parametrize("edit, compatible", [
    (lambda t: t + "  x:  {type: decimal, scale: 3}\n", True),  # a new optional field
    (lambda t: t.replace("maximum: 10}", "maximum: 20}"), True),  # a relaxed bound
    (lambda t: t.replace("minimum: 0, ", ""), True),  # a bound dropped
    (lambda t: t.replace("enum: [a, b]", "enum: [a, b, c]"), True),  # an enum value added
    (lambda t: t + "  x:  {type: string, required: true}\n", False),  # a new required field
    (lambda t: t.replace("maximum: 10}", "maximum: 5}"), False),  # a narrower bound
    (lambda t: t.replace("enum: [a, b]", "enum: [a]"), False),  # an enum value removed
    (lambda t: t.replace("n:  {type: integer", "n:  {type: decimal"), False),  # a type
    (lambda t: t.replace("  e:  {type: string, enum: [a, b]}\n", ""), False),  # a removed field
    (lambda t: t.replace("idempotency_key: [k]", "idempotency_key: [k, at]"), False),  # the key
    (lambda t: t.replace("n:  {type: integer,", "n:  {type: integer, required: true,"), False),  # now required
])
def test_only_additions_and_relaxations_are_compatible(tmp_path, edit, compatible):
    old, new = contract(tmp_path, 1, BASE), contract(tmp_path, 2, edit(BASE))
    found = changes(old, new)
    assert found and all(c.compatible for c in found) == compatible, [str(c) for c in found]


@pytest.mark.parametrize("text, words", [
    (BASE.replace("format: jsonl", "format: xml"), "format must be one of jsonl, csv"),
    (BASE.replace("partition_by: at", "partition_by: k"), "partition_by must name a timestamp or date field"),
    (BASE.replace("idempotency_key: [k]", "idempotency_key: [n]"), "idempotency_key must list required fields"),
    (BASE + "  typo: {type: string, maximum_lenght: 3}\n", "unknown rule key(s) maximum_lenght"),
    (BASE + "landing_dir: x\n", "unknown key(s) landing_dir"),
    (BASE + "  land_seq: {type: integer}\n", "not one of Evident's own columns"),
])
def test_an_unusable_contract_is_refused_naming_the_problem(tmp_path, text, words):
    with pytest.raises(ContractError, match=words.replace("(", r"\(").replace(")", r"\)")):
        contract(tmp_path, 1, text)
