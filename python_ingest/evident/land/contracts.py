"""Data contracts: versioned YAML files under the project's python_ingest/contracts/, pinned by a content-derived
contract_id."""
from __future__ import annotations

import hashlib
import json
import math
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

CONTRACT_KEYS = {"name", "version", "format", "landing", "idempotency_key", "partition_by", "max_record_bytes",
                 "max_quarantine_share", "fields"}
FIELD_KEYS = {"type", "required", "min_length", "max_length", "enum", "pattern", "minimum", "maximum",
              "maximum_exclusive", "scale", "max_decimal_places"}
FORMATS = ("jsonl", "csv")
MAX_PRECISION = 38  # the widest exact decimal both engines store
INT64 = (-(2**63), 2**63 - 1)  # integer fields are stored as bigint
# Columns every raw table has besides the contract's fields (evident.land.raw_tables).
RESERVED_COLUMNS = {"idempotency_key", "payload_sha256", "batch_id", "land_seq", "source_file", "source_line",
                    "contract_id", "landed_at"}
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
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

    @property
    def precision(self) -> int:
        """A decimal's total digits, sized from its bounds (digits before the point plus the scale; the widest
        both engines store, 38, when a side is unbounded): `0 ≤ value < 10^16` at scale 2 is 18."""
        scale = self.scale or 0
        upper = (self.maximum if self.maximum is not None
                 else (math.ceil(self.maximum_exclusive) - 1 if self.maximum_exclusive is not None else None))
        if upper is None or self.minimum is None:
            return MAX_PRECISION
        digits = max(len(str(int(abs(Decimal(b))))) for b in (upper, self.minimum))
        return min(MAX_PRECISION, max(1, digits) + scale)


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
    format: str = "jsonl"  # jsonl | csv
    landing: str = ""  # glob under the landing dir of the files this source owns
    partition_by: str = ""  # a timestamp or date field: its UTC date is a row's partition
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def partition_rule(self) -> FieldRule:
        return self.fields[self.partition_by]


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
    if not isinstance(spec, dict):
        raise ContractError(f"field {name!r}: its rule must be a mapping, e.g. {{type: string, required: true}}")
    unknown = sorted(set(spec) - FIELD_KEYS)
    if unknown:
        raise ContractError(f"field {name!r}: unknown rule key(s) {', '.join(unknown)} (known: "
                            f"{', '.join(sorted(FIELD_KEYS))})")
    kind = spec.get("type")
    if kind not in FIELD_TYPES:
        raise ContractError(f"field {name!r}: unknown type {kind!r} (one of {', '.join(sorted(FIELD_TYPES))})")
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
    unknown = sorted(set(raw) - CONTRACT_KEYS)
    if unknown:
        raise ContractError(f"contract {path}: unknown key(s) {', '.join(unknown)} (known: "
                            f"{', '.join(sorted(CONTRACT_KEYS))})")
    if not isinstance(raw.get("fields"), dict) or not raw["fields"]:
        raise ContractError(f"contract {path}: `fields` must map each field name to its rule")
    fields = {}
    for fname, spec in raw["fields"].items():
        if not isinstance(fname, str) or not _FIELD_NAME.fullmatch(fname) or fname in RESERVED_COLUMNS:
            raise ContractError(f"contract {path}: field name {fname!r} must be lowercase letters, digits and _ "
                                f"and not one of Evident's own columns ({', '.join(sorted(RESERVED_COLUMNS))})")
        try:
            fields[fname] = _rule(fname, spec or {})
        except ContractError as exc:
            raise ContractError(f"contract {path}: {exc}") from None
    keys = tuple(raw.get("idempotency_key") or ())
    if not keys or any(k not in fields or not fields[k].required for k in keys):
        raise ContractError(f"contract {path}: idempotency_key must list required fields")
    fmt = raw.get("format")
    if fmt not in FORMATS:
        raise ContractError(f"contract {path}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    partition = raw.get("partition_by")
    if partition not in fields or fields[partition].type not in ("timestamp", "date"):
        raise ContractError(f"contract {path}: partition_by must name a timestamp or date field, got {partition!r}")
    landing = raw.get("landing", f"{name}/**")
    if not isinstance(landing, str) or not landing or landing.startswith("/") or ".." in landing.split("/"):
        raise ContractError(f"contract {path}: landing must be a glob relative to the landing dir, got {landing!r}")
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
        format=fmt,
        landing=landing,
        partition_by=partition,
        raw=raw,
    )


def current_contract_id(contract: Contract) -> str:
    """Re-read the contract file: used just before commit to prove the pin still holds."""
    try:
        return load_contract(contract.name, contract.version, contract.path).contract_id
    except ContractError as exc:
        return f"unreadable: {exc}"
