"""Contract evolution: which changes between two versions of a source `raw.<name>` can absorb in place.

A new version that only adds optional fields, relaxes a bound or adds enum values evolves the raw table in
place (new nullable columns, added in the transaction of the first batch that uses the version). Anything
else — a field's type or scale, the key, the partition field, a removed field, a field that became required,
a narrower bound, a changed pattern — would make rows already landed contradict the contract; it is refused
(exit 2) naming the change, and needs a new source name.
"""
from __future__ import annotations

from dataclasses import dataclass

from evident.errors import ContractError
from evident.land.contracts import Contract, FieldRule


@dataclass(frozen=True)
class Change:
    field: str | None  # None: a contract-wide setting (key, partition)
    what: str
    compatible: bool

    def __str__(self) -> str:
        return f"{f'field {self.field}: ' if self.field else ''}{self.what}"


def changes(old: Contract, new: Contract) -> list[Change]:
    """Every schema-relevant difference from `old` to `new`, each marked compatible or not."""
    found: list[Change] = []
    if old.key_fields != new.key_fields:
        found.append(Change(None, f"idempotency_key {list(old.key_fields)} → {list(new.key_fields)}", False))
    if old.partition_by != new.partition_by:
        found.append(Change(None, f"partition_by {old.partition_by} → {new.partition_by}", False))
    for name, rule in old.fields.items():
        if name not in new.fields:
            found.append(Change(name, "removed", False))
        else:
            found += _field_changes(rule, new.fields[name])
    for name, rule in new.fields.items():
        if name not in old.fields:
            found.append(Change(name, "added as required" if rule.required else "added (optional)",
                                not rule.required))
    return found


def check_evolution(versions: list[Contract]) -> None:
    """Each version after the first must be a compatible evolution of the one before; ContractError (exit 2)
    naming every incompatible change otherwise."""
    for old, new in zip(versions, versions[1:]):
        refused = [c for c in changes(old, new) if not c.compatible]
        if refused:
            raise ContractError(
                f"contract {new.name} v{new.version} ({new.path.name}) is not a compatible evolution of "
                f"v{old.version}: {'; '.join(str(c) for c in refused)}. Compatible changes are new optional "
                f"fields, relaxed bounds and new enum values; anything else needs a new source name")


def _field_changes(old: FieldRule, new: FieldRule) -> list[Change]:
    name = old.name
    if old.type != new.type:
        return [Change(name, f"type {old.type} → {new.type}", False)]
    found = []
    if old.required != new.required:
        found.append(Change(name, "became required" if new.required else "became optional", not new.required))
    if old.scale != new.scale:
        found.append(Change(name, f"scale {old.scale} → {new.scale}", False))
    if (old.pattern.pattern if old.pattern else None) != (new.pattern.pattern if new.pattern else None):
        # A pattern's language cannot be compared; only dropping it is certainly a relaxation.
        found.append(Change(name, "pattern removed" if new.pattern is None else "pattern changed",
                            new.pattern is None))
    if old.enum != new.enum:
        if new.enum is None or (old.enum is not None and old.enum <= new.enum):
            found.append(Change(name, "enum values added" if new.enum else "enum removed", True))
        else:
            lost = sorted(set(old.enum or ()) - set(new.enum or ())) or ["(a new enum)"]
            found.append(Change(name, f"enum narrowed (no longer: {', '.join(lost)})", False))
    for bound, lower in (("minimum", True), ("min_length", True), ("maximum", False),
                         ("maximum_exclusive", False), ("max_length", False)):
        before, after = getattr(old, bound), getattr(new, bound)
        if before == after:
            continue
        relaxed = after is None or (before is not None and (after <= before if lower else after >= before))
        found.append(Change(name, f"{bound} {before} → {after}", relaxed))
    return found
