"""Published models come from dbt's manifest: meta.evident and the enforced contract, validated as untrusted
input; the manifest is re-parsed whenever the dbt project changed since it was written."""
from __future__ import annotations

import os
import time
from decimal import Decimal

import pytest

from evident.build.manifest import ContractColumn, published_models
from evident.errors import ConfigError
from evident.project import Project
from tests.helpers import make_project


def node(name="fct_x", meta=None, columns=None, enforced=True, **extra) -> dict:
    columns = columns if columns is not None else {
        "d": {"name": "d", "data_type": "date", "constraints": [{"type": "not_null"}]},
        "k": {"name": "k", "data_type": "varchar", "constraints": [{"type": "not_null"}]},
        "v": {"name": "v", "data_type": "decimal(18, 2)", "constraints": []},
        "last_land_seq": {"name": "last_land_seq", "data_type": "bigint", "constraints": [{"type": "not_null"}]},
    }
    evident = {"publish": True, "key": ["d", "k"], "partition_by": "d", "measures": ["v"],
               "tolerance": {"v": 0.01}, "audit_columns": ["last_land_seq"]} if meta is None else meta
    return {"resource_type": "model", "name": name, "schema": "analytics", "alias": name, "columns": columns,
            "config": {"contract": {"enforced": enforced}, "meta": {"evident": evident}}, **extra}


def models(*nodes: dict, tests: tuple[dict, ...] = ()) -> dict:
    manifest = {"nodes": {f"model.p.{n['name']}": n for n in nodes}}
    manifest["nodes"].update({f"test.p.t{i}": t for i, t in enumerate(tests)})
    return published_models(Project(os.getcwd()), manifest)


def test_meta_evident_and_the_contract_make_a_published_model():
    accepted = {"resource_type": "test", "attached_node": "model.p.fct_x", "column_name": "k",
                "test_metadata": {"name": "accepted_values", "kwargs": {"values": ["a", "b"]}}}
    unpublished = node("fct_y", meta={"publish": False})
    found = models(node(), unpublished, {"resource_type": "model", "name": "stg", "config": {}}, tests=(accepted,))
    assert list(found) == ["fct_x"]
    model = found["fct_x"]
    assert model.columns == (ContractColumn("d", "date", True), ContractColumn("k", "varchar", True, ("a", "b")),
                             ContractColumn("v", "decimal(18,2)", False))  # the audit column is not published
    assert (model.key, model.partition_by, model.measures) == (("d", "k"), "d", ("v",))
    assert model.tolerance == {"v": Decimal("0.01")}
    assert (model.audited, model.published) == ('"analytics"."fct_x"', 'published."fct_x"')


@pytest.mark.parametrize("bad, message", [
    (node('x"; drop table raw.orders; --'), "not a plain lowercase identifier"),
    (node(columns={"a b": {"name": "a b", "data_type": "date"}}, meta={"publish": True, "key": ["a b"],
                                                                       "partition_by": "a b"}), "a b"),
    (node(enforced=False), "contract is not enforced"),
    (node(meta={"publish": True, "key": ["d"]}), "partition_by is required"),
    (node(meta={"publish": True, "partition_by": "d"}), "key is required"),
    (node(meta={"publish": True, "key": ["nope"], "partition_by": "d"}), "nope not in the model's contract"),
    (node(meta={"publish": True, "key": ["d"], "partition_by": "k"}), "not a date or timestamp"),
    (node(meta={"publish": True, "key": ["d"], "partition_by": "d", "measures": ["k"]}), "not an exact number"),
    (node(meta={"publish": True, "key": ["d"], "partition_by": "d", "measures": ["v"], "tolerance": {"v": -1}}),
     "not a number ≥ 0"),
    (node(meta={"publish": True, "key": ["d"], "partition_by": "d", "tolerance": {"k": 1}}), "not one of the measures"),
    (node(meta={"publish": True, "key": ["last_land_seq"], "partition_by": "d", "audit_columns": ["last_land_seq"]}),
     "cannot be an audit column"),
    (node(meta={"publish": "yes", "key": ["d"], "partition_by": "d"}), "must be true or false"),
    (node(meta={"publish": True, "key": ["d"], "partition_by": "d", "grain": ["d"]}), "unknown key(s) grain"),
    (node(columns={"d": {"name": "d", "data_type": "double", "constraints": []}},
          meta={"publish": True, "key": ["d"], "partition_by": "d"}), "cannot be published"),
    (node(columns={"d": {"name": "d", "data_type": "timestamptz", "constraints": []}},
          meta={"publish": True, "key": ["d"], "partition_by": "d"}), "cannot be published"),
])
def test_a_bad_declaration_is_refused_naming_the_model(bad, message):
    with pytest.raises(ConfigError) as raised:
        models(bad)
    assert message in str(raised.value)
    assert raised.value.exit_code == 2


def test_the_manifest_follows_the_dbt_project_publish_added_and_removed(tmp_path):
    root = make_project(tmp_path / "project")
    project = Project(root)
    assert "fct_sessions" in published_models(project)  # parsed (no build has run in this copy)
    parsed = root / "target" / "manifest" / "manifest.json"
    assert parsed.is_file()
    written = parsed.stat().st_mtime_ns
    assert "fct_sessions" in published_models(project) and parsed.stat().st_mtime_ns == written  # fresh: no parse
    yml = root / "dbt_project" / "models" / "marts" / "_marts.yml"
    time.sleep(0.01)
    yml.write_text(yml.read_text().replace("publish: true\n          key: [session_id]",
                                           "publish: false\n          key: [session_id]"))
    after = published_models(project)
    assert "fct_sessions" not in after and "fct_daily_metrics" in after
    assert parsed.stat().st_mtime_ns > written
