"""What the gate found: one CheckResult per expectation and engine, gathered in a GateReport."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

_TEXT_LIMIT = 2000  # characters kept per text column in evident.gate_results


@dataclass(frozen=True)
class CheckResult:
    """One expectation on one engine (or a validation that could not run: expectation_type `(validation)`)."""

    engine: str
    suite: str
    expectation_type: str
    column: str | None
    success: bool
    observed: str
    expected: str
    failing_sample: str
    description: str | None = None
    error: str | None = None  # metric/validation error message, redacted
    query: str | None = None  # unexpected-rows SQL with {batch} replaced by the validated table

    def as_row(self, run_id: str, batch_ids: str, validated_at: datetime) -> tuple:
        def clip(s: str | None) -> str | None:
            return None if s is None else s[:_TEXT_LIMIT]

        observed = self.observed if not self.error else f"error: {self.error}"
        return (run_id, self.engine, self.suite, self.expectation_type, self.column, self.success,
                clip(observed), clip(self.expected), clip(self.failing_sample), batch_ids, validated_at)


@dataclass
class GateReport:
    run_id: str
    batch_ids: dict[str, list[str]]  # per engine
    checks: list[CheckResult] = field(default_factory=list)
    elapsed_s: dict[str, float] = field(default_factory=dict)  # per engine, validation only
    import_s: float = 0.0
    data_docs_index: Path | None = None

    @property
    def engines(self) -> list[str]:
        return list(self.batch_ids)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    @property
    def success(self) -> bool:
        return bool(self.checks) and not self.failures and all(
            any(c.engine == e for c in self.checks) for e in self.engines)

    def summary(self) -> str:
        parts = []
        for engine in self.engines:
            checks = [c for c in self.checks if c.engine == engine]
            failed = sum(not c.success for c in checks)
            parts.append(f"{engine}: {len(checks) - failed}/{len(checks)} passed"
                         + (f" ({self.elapsed_s[engine]:.1f} s)" if engine in self.elapsed_s else ""))
        return f"gate {'PASSED' if self.success else 'FAILED'} — " + "; ".join(parts)

    def render(self, max_rows: int = 50) -> str:
        """A readable summary and, when something failed, a table of the failures."""
        lines = [self.summary()]
        if not self.failures:
            return "\n".join(lines)
        header = ("engine", "suite", "expectation", "column", "observed", "expected", "failing values")
        rows = [(c.engine, c.suite, c.expectation_type, c.column or "-",
                 f"error: {c.error}" if c.error else c.observed, c.expected, c.failing_sample or "-")
                for c in self.failures[:max_rows]]
        limits = (8, 17, 46, 24, 70, 60, 70)
        cells = [[clip(v, limit) for v, limit in zip(row, limits)] for row in [header, *rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
        lines += ["", fmt(cells[0]), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells[1:])]
        if len(self.failures) > max_rows:
            lines.append(f"… and {len(self.failures) - max_rows} more failure(s) (see evident.gate_results)")
        errors = dict.fromkeys((c.engine, c.suite, c.error) for c in self.failures if c.error)
        if errors:
            lines += ["", "Errors (an expectation that could not be computed fails with its error):"]
            lines += [f"  {engine} / {suite}: {clip(error, 500)}" for engine, suite, error in errors]
        if self.data_docs_index:
            lines.append(f"Data Docs: {self.data_docs_index}")
        return "\n".join(lines)


def clip(value: str, limit: int) -> str:
    value = " ".join(str(value).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"
