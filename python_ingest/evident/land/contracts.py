"""Data contracts: versioned YAML files under the project's python_ingest/contracts/, pinned by a content-derived
contract_id."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from evident.errors import ContractError
from evident.project import Project, find_project

FIELD_TYPES = {"string", "integer", "timestamp", "decimal", "object"}


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
    max_decimal_places: int | None = None


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
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)


def _rule(name: str, spec: dict) -> FieldRule:
    kind = spec.get("type")
    if kind not in FIELD_TYPES:
        raise ContractError(f"field {name!r}: unknown type {kind!r}")
    bound = _parse_ts if kind == "timestamp" else (Decimal if kind == "decimal" else (lambda v: v))
    convert = lambda v: None if v is None else bound(str(v) if kind in ("decimal", "timestamp") else v)  # noqa: E731
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
        max_decimal_places=spec.get("max_decimal_places"),
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
