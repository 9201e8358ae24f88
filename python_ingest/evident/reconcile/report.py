"""A reconciliation's findings: per (table, partition) a PartitionResult with its differing keys; the report
renders them as a table."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from evident.control.batches import utcnow

MAX_KEYS = 50  # differing keys kept per partition (differing_keys JSON is capped at this)


@dataclass
class KeyDiff:
    key: str
    kind: str  # missing_in_duckdb | missing_in_postgres | different | duplicated_in_duckdb | duplicated_in_postgres
    columns: list[str] = field(default_factory=list)
    duckdb: dict | None = None  # the differing columns' canonical text (None = SQL NULL)
    postgres: dict | None = None

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"key": self.key, "kind": self.kind}
        if self.columns:
            out["columns"] = self.columns
        if self.duckdb is not None or self.postgres is not None:
            out["duckdb"], out["postgres"] = self.duckdb, self.postgres
        return out


@dataclass
class PartitionResult:
    table: str
    partition: str
    duckdb_rows: int
    postgres_rows: int
    duckdb_sums: dict
    postgres_sums: dict
    status: str  # matched | mismatched
    threshold: Decimal = Decimal(0)
    diffs: list[KeyDiff] = field(default_factory=list)
    truncated: bool = False  # more differing keys exist than were kept
    max_measure_delta: Decimal = Decimal(0)
    within_threshold: bool = False  # mismatched only by measure values within the table's tolerance
    rows_fetched: int = 0

    @property
    def acceptable(self) -> bool:
        return self.status == "matched" or self.within_threshold

    def differing_keys_json(self) -> str:
        keys = [d.as_dict() for d in self.diffs[:MAX_KEYS]]
        return json.dumps({"keys": keys, "truncated": self.truncated}, default=str, ensure_ascii=False)


@dataclass
class Validation:
    success: bool
    failures: list[str]
    engine: str = "great_expectations"


@dataclass
class ReconcileReport:
    run_id: str
    status: str  # matched | mismatched | skipped
    reason: str = ""
    tables: list[str] = field(default_factory=list)
    partitions: list[PartitionResult] = field(default_factory=list)
    date_from: date | None = None
    date_to: date | None = None
    full: bool = False  # every partition hashed (--full), not only those that changed
    partitions_hashed: int = 0  # the most partitions one engine hashed in this run (the others kept theirs)
    rows_fetched: int = 0  # rows brought into Python to pinpoint differences
    queries: int = 0
    elapsed_s: float = 0.0
    checked_at: datetime = field(default_factory=utcnow)
    validation: Validation | None = None

    @property
    def mismatched(self) -> list[PartitionResult]:
        return [p for p in self.partitions if p.status != "matched"]

    @property
    def success(self) -> bool:
        if self.status == "skipped":
            return True
        if self.validation is not None:
            return self.validation.success
        return all(p.acceptable for p in self.partitions)

    def rows(self) -> list[dict]:
        """One row per (table, partition): what evident.reconciliations stores and the GX suite validates."""
        if self.status == "skipped":
            return [{"run_id": self.run_id, "table_name": "*", "partition": "*", "duckdb_rows": 0,
                     "postgres_rows": 0, "status": "skipped", "differing_keys": json.dumps({"reason": self.reason}),
                     "threshold": Decimal(0), "max_measure_delta": Decimal(0), "within_threshold": False,
                     "checked_at": self.checked_at}]
        return [{"run_id": self.run_id, "table_name": p.table, "partition": p.partition,
                 "duckdb_rows": p.duckdb_rows, "postgres_rows": p.postgres_rows, "status": p.status,
                 "differing_keys": p.differing_keys_json() if p.status != "matched" else None,
                 "threshold": p.threshold, "max_measure_delta": p.max_measure_delta,
                 "within_threshold": p.within_threshold, "checked_at": self.checked_at}
                for p in self.partitions]

    def summary(self) -> dict:
        return {"status": self.status, "success": self.success, "reason": self.reason or None,
                "tables": self.tables, "partitions": len(self.partitions),
                "mismatched_partitions": [f"{p.table}/{p.partition}" for p in self.mismatched][:20],
                "full": self.full, "partitions_hashed": self.partitions_hashed,
                "rows_fetched": self.rows_fetched, "queries": self.queries, "elapsed_s": self.elapsed_s,
                "validation_failures": self.validation.failures if self.validation else None}

    def render(self) -> str:
        if self.status == "skipped":
            return f"reconciliation skipped: {self.reason}"
        window = ""
        if self.date_from or self.date_to:
            window = f" [{self.date_from or '…'} .. {self.date_to or '…'}]"
        lines = [f"reconciliation {self.run_id}{window}: "
                 f"{'OK' if self.success else 'FAILED'} — {len(self.partitions)} partition(s) in "
                 f"{len(self.tables)} table(s), {len(self.mismatched)} mismatched; "
                 f"{'all' if self.full else self.partitions_hashed} hashed, "
                 f"{self.rows_fetched} row(s) fetched to pinpoint, {self.elapsed_s:.2f} s"]
        for table in self.tables:
            parts = [p for p in self.partitions if p.table == table]
            bad = [p for p in parts if p.status != "matched"]
            lines.append(f"  {table}: {len(parts) - len(bad)}/{len(parts)} partitions matched, "
                         f"{sum(p.duckdb_rows for p in parts)} rows in duckdb, "
                         f"{sum(p.postgres_rows for p in parts)} in postgres")
        if self.mismatched:
            header = ("table", "partition", "duckdb", "postgres", "key", "kind", "columns / values")
            body = []
            for p in self.mismatched:
                note = (f" (within threshold {p.threshold}: max delta {p.max_measure_delta})"
                        if p.within_threshold else "")
                if not p.diffs:
                    body.append((p.table, p.partition, str(p.duckdb_rows), str(p.postgres_rows), "-",
                                 "fingerprint differs" + note, ""))
                for i, d in enumerate(p.diffs[:MAX_KEYS]):
                    values = "; ".join(f"{c}: duckdb={_show((d.duckdb or {}).get(c))} "
                                       f"postgres={_show((d.postgres or {}).get(c))}" for c in d.columns)
                    first = i == 0
                    body.append((p.table if first else "", p.partition if first else "",
                                 str(p.duckdb_rows) if first else "", str(p.postgres_rows) if first else "",
                                 d.key, d.kind + (note if first else ""), values))
                if p.truncated:
                    body.append(("", "", "", "", "…", f"more differing keys (first {len(p.diffs)} shown)", ""))
            widths = [min(66, max(len(h), *(len(r[i]) for r in body))) for i, h in enumerate(header[:-1])]

            def fmt(r: tuple) -> str:
                return "  ".join(_cut(v, w).ljust(w) for v, w in zip(r[:-1], widths)) + "  " + r[-1]

            lines += ["", fmt(header), fmt(tuple("-" * w for w in widths) + ("-" * 16,))]
            lines += [fmt(r) for r in body]
        if self.validation and self.validation.failures:
            lines += ["", "failed expectations:"] + [f"  - {f}" for f in self.validation.failures]
        return "\n".join(lines)


def _show(value: str | None) -> str:
    return "NULL" if value is None else repr(value)


def _cut(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"
