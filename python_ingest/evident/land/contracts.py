"""Data contracts: versioned YAML files under the project's python_ingest/contracts/, pinned by a content-derived
contract_id."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from evident.errors import ContractError
from evident.project import Project, find_project

FIELD_TYPES = {"string", "integer", "decimal", "boolean", "timestamp", "date", "object"}
DEFAULT_SCALE = 2  # decimal places a decimal field allows unless its rule says `scale`


@dataclass(frozen=True)
class FieldRule:
    name: str
    type: str
    required: bool
    min_length: int | None = None
    max_length: int | None = None
    enum: frozenset[str] | None = None
    minimum: Any = None
    maximum: Any = None
    maximum_exclusive: Any = None
    scale: int | None = None  # decimal: allowed decimal places (`scale`, or its older name `max_decimal_places`)
    pattern: re.Pattern[str] | None = None  # string: a regular expression the whole value must match

    @property
    def max_decimal_places(self) -> int | None:
        return self.scale


@dataclass(frozen=True)
class Contract:
    name: str
    version: int
    contract_id: str
    path: Path
    fields: dict[str, FieldRule]
    max_record_bytes: int
    max_quarantine_share: float
    key_fields: tuple[str, ...]
    raw: dict = field(repr=False, default_factory=dict)


def contract_path(name: str, version: int, project: Project | None = None) -> Path:
    return (project or find_project()).contracts_dir / f"{name}.v{version}.yml"


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def _scale(name: str, kind: str, spec: dict) -> int | None:
    if kind != "decimal":
        return None
    given = {key: spec[key] for key in ("scale", "max_decimal_places") if spec.get(key) is not None}
    if len(set(given.values())) > 1:
        raise ContractError(f"field {name!r}: scale and max_decimal_places disagree ({given})")
    scale = next(iter(given.values()), DEFAULT_SCALE)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 0:
        raise ContractError(f"field {name!r}: scale must be a whole number >= 0, got {scale!r}")
    return scale


def _pattern(name: str, spec: dict) -> re.Pattern[str] | None:
    if spec.get("pattern") is None:
        return None
    try:
        return re.compile(str(spec["pattern"]))
    except re.error as exc:
        raise ContractError(f"field {name!r}: pattern {spec['pattern']!r} is not a regular expression: {exc}") from None


def _rule(name: str, spec: dict) -> FieldRule:
    kind = spec.get("type")
    if kind not in FIELD_TYPES:
        raise ContractError(f"field {name!r}: unknown type {kind!r}")
    bounds: dict[str, Callable[[str], Any]] = {"timestamp": _parse_ts, "decimal": Decimal, "date": date.fromisoformat}
    bound = bounds.get(kind, lambda v: v)
    textual = kind in ("decimal", "timestamp", "date")
    convert = lambda v: None if v is None else bound(str(v) if textual else v)  # noqa: E731
    return FieldRule(
        name=name,
        type=kind,
        required=bool(spec.get("required", False)),
        min_length=spec.get("min_length"),
        max_length=spec.get("max_length"),
        enum=frozenset(spec["enum"]) if "enum" in spec else None,
        minimum=convert(spec.get("minimum")),
        maximum=convert(spec.get("maximum")),
        maximum_exclusive=convert(spec.get("maximum_exclusive")),
        scale=_scale(name, kind, spec),
        pattern=_pattern(name, spec),
    )


def contract_id_of(raw: dict) -> str:
    """name@version#hash, the hash over the normalised content (comments and layout do not count)."""
    normalised = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:16]
    return f"{raw['name']}@{raw['version']}#{digest}"


def load_contract(name: str = "app_events", version: int = 1, path: Path | None = None,
                  project: Project | None = None) -> Contract:
    path = path or contract_path(name, version, project)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"contract file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ContractError(f"contract file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or raw.get("name") != name or raw.get("version") != version:
        raise ContractError(f"contract file {path} does not declare name {name!r} version {version}")
    fields = {fname: _rule(fname, spec or {}) for fname, spec in (raw.get("fields") or {}).items()}
    keys = tuple(raw.get("idempotency_key") or ())
    if not keys or any(k not in fields or not fields[k].required for k in keys):
        raise ContractError(f"contract {path}: idempotency_key must name required fields")
    share = float(raw.get("max_quarantine_share", 0.05))
    if not 0 <= share <= 1:
        raise ContractError(f"contract {path}: max_quarantine_share must be within [0, 1]")
    return Contract(
        name=name,
        version=version,
        contract_id=contract_id_of(raw),
        path=path,
        fields=fields,
        max_record_bytes=int(raw.get("max_record_bytes", 1 << 20)),
        max_quarantine_share=share,
        key_fields=keys,
        raw=raw,
    )


def current_contract_id(contract: Contract) -> str:
    """Re-read the contract file: used just before commit to prove the pin still holds."""
    try:
        return load_contract(contract.name, contract.version, contract.path).contract_id
    except ContractError as exc:
        return f"unreadable: {exc}"
