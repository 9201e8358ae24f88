"""GX validation results → CheckResults: what was expected, what was observed, a few failing values, errors.

A metric that errors (bad SQL, missing table) does not raise in GX: the expectation just fails with an empty
result and the error in `exception_info` (FACTS.md). Such failures carry that message here.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from evident.gate.report import CheckResult, clip
from evident.secrets import redact

SAMPLE_SIZE = 5  # failing values kept per expectation
# kwargs that say how to validate, not what is expected
_NOT_EXPECTATIONS = {"column", "column_A", "column_B", "column_list", "batch_id", "result_format",
                     "catch_exceptions", "include_config", "meta", "notes", "description", "condition_parser"}


def error_check(engine: str, suite: str, message: str) -> CheckResult:
    return CheckResult(engine=engine, suite=suite, expectation_type="(validation)", column=None, success=False,
                       observed="", expected="the suite runs", failing_sample="",
                       error=clip(redact(message), 1000))


def checks_from_suite_result(engine: str, validation: Any) -> list[CheckResult]:
    suite = validation.suite_name
    spec = (validation.meta or {}).get("batch_spec") or {}
    table = ".".join(p for p in (spec.get("schema_name"), spec.get("table_name")) if p) or None
    checks = []
    for r in validation.results:
        config = r.expectation_config
        kwargs = dict(config.kwargs)
        column = kwargs.get("column")
        if column is None and "column_A" in kwargs:
            column = f"{kwargs['column_A']}, {kwargs['column_B']}"
        elif column is None and "column_list" in kwargs:
            column = ", ".join(kwargs["column_list"])
        error = None if r.success else _exception_message(r.exception_info)
        result = r.result or {}
        checks.append(CheckResult(
            engine=engine, suite=suite, expectation_type=config.type, column=column, success=bool(r.success),
            observed=_observed(config.type, result), expected=_expected(config.type, kwargs, config.description),
            failing_sample=_failing_sample(result), description=config.description, error=error,
            query=(str(kwargs["unexpected_rows_query"]).replace("{batch}", table)
                   if table and isinstance(kwargs.get("unexpected_rows_query"), str) else None),
        ))
    if not validation.results and not validation.success:
        checks.append(error_check(engine, suite, "the validation failed without results"))
    return checks


def _exception_message(info: Any) -> str | None:
    """The message(s) of GX's exception_info: either one dict or a dict keyed by metric id."""
    if not info:
        return None
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            if node.get("raised_exception") and node.get("exception_message"):
                found.append(str(node["exception_message"]))
                return
            for value in node.values():
                visit(value)
        elif hasattr(node, "exception_message"):  # ExceptionInfo objects
            if getattr(node, "raised_exception", True) and node.exception_message:
                found.append(str(node.exception_message))

    visit(info)
    if not found:
        return None
    unique = list(dict.fromkeys(_clean_db_error(m) for m in found))
    return clip(redact(" | ".join(unique)), 1000)


def _clean_db_error(message: str) -> str:
    """SQLAlchemy's wrapping off a driver error: '(driver.Class) text [SQL: …] (Background on …)' → 'text'."""
    message = " ".join(message.split())
    message = re.sub(r"\s*\[SQL: .*$", "", message)
    message = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", message)
    message = re.sub(r"^\((?:[\w.]+)\)\s*", "", message)
    return message.strip()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), default=str, ensure_ascii=False, separators=(", ", ": "))


def _observed(expectation_type: str, result: Mapping) -> str:
    if not result:
        return ""
    if "unexpected_count" in result and "element_count" in result:
        count, total = result.get("unexpected_count") or 0, result.get("element_count") or 0
        percent = result.get("unexpected_percent")
        text = f"{count} unexpected of {total} rows"
        if count and percent is not None:
            text += f" ({percent:.4g}%)"
        if result.get("missing_count"):
            text += f", {result['missing_count']} null"
        return text
    if "observed_value" in result:
        observed = result["observed_value"]
        if expectation_type == "unexpected_rows_expectation":
            return f"{observed} unexpected row(s)"
        return dumps(observed)
    return dumps(result)


_PLAIN_EXPECTATIONS = {
    "expect_column_values_to_be_unique": "unique",
    "expect_compound_columns_to_be_unique": "unique together",
    "expect_column_values_to_not_be_null": "not null",
}


def _expected(expectation_type: str, kwargs: Mapping, description: str | None) -> str:
    if "unexpected_rows_query" in kwargs:
        return "no rows" + (f": {description}" if description else "")
    if expectation_type in _PLAIN_EXPECTATIONS:
        return _PLAIN_EXPECTATIONS[expectation_type]
    parts = []
    for key, value in kwargs.items():
        if key in _NOT_EXPECTATIONS or value is None:
            continue
        if key != "row_condition":
            parts.append(f"{key}={dumps(value)}")
    if kwargs.get("row_condition"):
        parts.append(f"where {_condition_text(kwargs['row_condition'])}")
    return ", ".join(parts) or "(as named)"


def _condition_text(condition: Any) -> str:
    if isinstance(condition, Mapping) and "column" in condition and "operator" in condition:
        column = condition["column"].get("name") if isinstance(condition["column"], Mapping) else condition["column"]
        return f"{column} {condition['operator']} {dumps(condition.get('parameter'))}"
    return repr(condition) if not isinstance(condition, str) else condition


def _failing_sample(result: Mapping) -> str:
    if not result:
        return ""
    details = result.get("details") or {}
    rows = details.get("unexpected_rows") if isinstance(details, Mapping) else None
    if rows:
        return dumps(list(rows)[:SAMPLE_SIZE])
    values = result.get("partial_unexpected_list")
    if values:
        return dumps(list(values)[:SAMPLE_SIZE])
    counts = result.get("partial_unexpected_counts")
    if counts:
        return dumps(list(counts)[:SAMPLE_SIZE])
    return ""
