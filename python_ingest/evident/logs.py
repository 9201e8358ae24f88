"""What Evident prints: text for people, or one JSON object per line for machines (`--log-format json`).

Two kinds of lines. *Output* (`echo`, `document`) is what a command tells its user — progress and the summary on
stdout, problems on stderr — and is printed whatever the log level. *Log records* (stdlib `logging`, from
Evident and from the libraries it runs) go to stderr, filtered by level. In text mode output is the text as it
is and a log record reads `WARNING evident.retry: …`. In json mode both are one JSON object per line rendered by
structlog: `ts`, `level`, `logger`, `event` (a stable code where there is one), `message`, the bound context
(`run_id`, `command`, and `step` while a step runs — see `bind`/`step`) and the fields of the call (batch id,
counts, durations). The keys a shipper relies on are always present (`run_id` is null before a run started).

dbt and Great Expectations write to sys.stdout and sys.stderr themselves. In json mode both streams are wrapped
(`JsonLines`): every line anything writes there becomes a JSON object too (`logger` "stdout"/"stderr", colour
codes removed; bytes written to their `buffer` too), so a scheduler can parse every line. Only writes that
bypass Python's streams — a C library or a child process writing to file descriptor 1 or 2 — are not caught;
none was seen in the runs the tests make (dbt, GX, DuckDB, psycopg, land workers).

Every string passes through the secret redactor before it is rendered (a password inside a JSON-escaped value
would otherwise slip past a redactor applied to the rendered line).
"""
from __future__ import annotations

import codecs
import contextlib
import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.contextvars import (
    bind_contextvars,
    bound_contextvars,
    clear_contextvars,
    get_contextvars,
    merge_contextvars,
    unbind_contextvars,
)

from evident.secrets import redact

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
# The keys every JSON line carries, null when they do not apply yet (before a run started, outside a step).
ALWAYS = ("run_id", "command")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class _State:
    fmt = "text"
    stdout: TextIO = sys.stdout  # the real streams (before wrapping)
    stderr: TextIO = sys.stderr
    lock = threading.RLock()
    # The bound context, process-wide as well as in contextvars: dbt runs its nodes in worker threads, which
    # do not inherit the contextvars of the thread that started the run.
    context: dict[str, Any] = {}


_state = _State()


# ------------------------------------------------------------------------------------------ rendering

def _redact_values(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, dict | list | tuple):
            event[key] = json.loads(redact(json.dumps(value, default=str)))
    return event


def _timestamp(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("ts", datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    return event


def _merge_process_context(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(_state.context.items()):
        event.setdefault(key, value)
    return event


def _always(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in ALWAYS:
        event.setdefault(key, None)
    return event


def _order(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """ts, level, logger, event, message and the context first: a person reading the JSON finds them there."""
    head = ("ts", "level", "logger", "event", "message", *ALWAYS, "step")
    ordered = {k: event.pop(k) for k in head if k in event}
    ordered.update(event)
    return ordered


_JSON_CHAIN = (merge_contextvars, _merge_process_context, _always, _timestamp,
               structlog.processors.format_exc_info, _redact_values, _order,
               structlog.processors.JSONRenderer(ensure_ascii=False, default=str))


def _json_line(event: dict[str, Any]) -> str:
    rendered: Any = event
    for processor in _JSON_CHAIN:
        rendered = processor(None, "", rendered)
    return str(rendered)


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Fields a caller passed with `extra={"fields": {...}}` (kept apart from LogRecord's own attributes)."""
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class _JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """stdlib log records (Evident's and the libraries') as JSON lines, through the same chain as output."""

    def __init__(self) -> None:
        super().__init__(processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_JSON_CHAIN],
                         foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                                            _from_record])


def _from_record(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record: logging.LogRecord = event["_record"]
    event["message"] = str(event.pop("event")).rstrip()
    event["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event.update(_record_fields(record))
    return event


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# ------------------------------------------------------------------------------------------ set-up

def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Log records to stderr at `level` in `fmt`; in json mode also wrap sys.stdout/sys.stderr (see above).
    Calling it again (another command in the same process) replaces the previous set-up."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}")
    restore()
    _state.fmt = fmt
    _state.stdout, _state.stderr = sys.stdout, sys.stderr
    handler = logging.StreamHandler(_RealStderr())
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # dbt and GX are chatty at INFO; their own output is summarised by Evident.
    for noisy in ("dbt", "great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(fmt == "json")  # warnings.warn → py.warnings log records → JSON lines
    if fmt == "json":
        sys.stdout = JsonLines(_state.stdout, "stdout")
        sys.stderr = JsonLines(_state.stderr, "stderr")


def restore() -> None:
    """Undo the stream wrapping (flushing any partial line); the set-up is text mode again."""
    with _state.lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, JsonLines):
                stream.flush()
                setattr(sys, name, stream.target)
        _state.fmt = "text"
        clear_contextvars()
        _state.context.clear()


def json_mode() -> bool:
    return _state.fmt == "json"


def json_mode_requested(argv: list[str], env: dict[str, str]) -> bool:
    """Whether a command line asks for json logs, before click has parsed it: so that even a usage error in the
    group's own options is reported as a JSON line."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--log-format=json" or (arg == "--log-format" and argv[i + 1:i + 2] == ["json"]):
            return True
        if arg.startswith("--log-format"):
            return False
    return env.get("EVIDENT_LOG_FORMAT", "").strip().lower() == "json"


class _RealStderr(io.TextIOBase):
    """The log handler's stream: the real stderr of the current set-up (never the wrapper, never stale)."""

    def write(self, text: str) -> int:
        with _state.lock:
            _clear_progress()  # a log record never lands at the end of the status line
            return _state.stderr.write(text)

    def flush(self) -> None:
        _state.stderr.flush()


class JsonLines(io.TextIOBase):
    """A text stream that turns every line written to it into one JSON object on `target` (json mode)."""

    def __init__(self, target: TextIO, name: str):
        super().__init__()
        self.target = target
        self.name = name
        self._partial = ""
        self.buffer = _BinaryLines(self)  # for code that writes bytes (sys.stdout.buffer, click.echo(b"…"))

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False  # no progress bars or colours: they would only turn into noise lines

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def fileno(self) -> int:
        return self.target.fileno()

    def write(self, text: str) -> int:
        if isinstance(text, bytes | bytearray):
            return self.buffer.write(text)
        with _state.lock:
            lines = (self._partial + text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
            self._partial = lines.pop()
            for line in lines:
                self._emit(line)
        return len(text)

    def flush(self) -> None:
        with _state.lock:
            if self._partial:
                line, self._partial = self._partial, ""
                self._emit(line)
            self.target.flush()

    def _emit(self, line: str) -> None:
        line = _ANSI.sub("", line).rstrip()
        if not line.strip():
            return
        level = "warning" if self.name == "stderr" else "info"
        self.target.write(_json_line({"level": level, "logger": self.name, "event": "output",
                                      "message": line}) + "\n")
        self.target.flush()


class _BinaryLines(io.RawIOBase):
    """The `buffer` of a JsonLines stream: bytes decoded (UTF-8, a character split across writes kept whole,
    invalid bytes replaced) and written as text."""

    def __init__(self, text: JsonLines):
        super().__init__()
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with _state.lock:
            self._text.write(self._decoder.decode(bytes(data)))
        return len(data)

    def flush(self) -> None:
        self._text.flush()


# ------------------------------------------------------------------------------------------ output and context

def echo(text: str, *, err: bool = False, event: str | None = None, level: str | None = None,
         **fields: Any) -> None:
    """A line (or block) of a command's output: the text as it is, or — in json mode — one JSON object with
    the text as `message`, the `event` code, the fields and the bound context. Printed at every log level."""
    with _state.lock:
        stream = _state.stderr if err else _state.stdout
        if json_mode():
            entry: dict[str, Any] = {"level": level or ("error" if err else "info"), "logger": "evident"}
            if event:
                entry["event"] = event
            entry["message"] = text
            entry.update(fields)
            stream.write(_json_line(entry) + "\n")
        else:
            _clear_progress()
            stream.write(redact(text) + "\n")
        stream.flush()


def document(obj: Any, *, err: bool = False) -> None:
    """A machine-readable document (`run --json`, `status --json`): indented for a person in text mode, one
    line in json mode (so that every line of the output is still one JSON object)."""
    text = json.dumps(obj, ensure_ascii=False, default=str, indent=None if json_mode() else 2)
    with _state.lock:
        stream = _state.stderr if err else _state.stdout
        stream.write(redact(text) + "\n")
        stream.flush()


def bind(**context: Any) -> None:
    """Context every later line carries (e.g. run_id and command when a run starts), from any thread."""
    bind_contextvars(**context)
    _state.context.update(context)


def unbind(*keys: str) -> None:
    unbind_contextvars(*keys)
    for key in keys:
        _state.context.pop(key, None)


def context() -> dict[str, Any]:
    """The bound context (run_id, command, step …)."""
    return {**_state.context, **get_contextvars()}


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Lines printed inside carry `step` (also those of worker threads)."""
    previous = _state.context.get("step")
    _state.context["step"] = name
    try:
        with bound_contextvars(step=name):
            yield
    finally:
        if previous is None:
            _state.context.pop("step", None)
        else:
            _state.context["step"] = previous


# ------------------------------------------------------------------------------------------ progress

class Progress:
    """A live status line on stderr for a long step — `land … 14 s · 3 files · 120,000 rows` — redrawn every
    `interval` seconds, only in text mode and only when stderr is a terminal (a log file gets no `\\r` noise).
    Counts come from `advance()`, which any code inside the step may call (a no-op when no progress shows)."""

    _current: Progress | None = None

    def __init__(self, label: str, interval: float = 1.0, stream: TextIO | None = None):
        self.label = label
        self.interval = interval
        self.stream = stream
        self.files = 0
        self.rows = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = 0

    @staticmethod
    def wanted(stream: TextIO) -> bool:
        try:
            return not json_mode() and stream.isatty()
        except (AttributeError, ValueError):
            return False

    def line(self) -> str:
        parts = [f"{self.label} … {time.monotonic() - self.started:.0f} s"]
        if self.files:
            parts.append(f"{self.files:,} file{'s' if self.files != 1 else ''}")
        if self.rows:
            parts.append(f"{self.rows:,} rows")
        return " · ".join(parts)

    def __enter__(self) -> Progress:
        stream = self.stream or _state.stderr
        Progress._current = self
        if self.wanted(stream):
            self.stream = stream
            self._thread = threading.Thread(target=self._run, name=f"progress-{self.label}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._clear()
        Progress._current = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def _draw(self) -> None:
        assert self.stream is not None
        text = self.line()
        with _state.lock:
            self.stream.write("\r" + text.ljust(self._drawn))
            self.stream.flush()
            self._drawn = len(text)

    def _clear(self) -> None:
        if self._drawn and self.stream is not None:
            with _state.lock:
                self.stream.write("\r" + " " * self._drawn + "\r")
                self.stream.flush()
            self._drawn = 0


def _clear_progress() -> None:
    """Wipe the status line before other text is printed (it is drawn again at its next tick)."""
    current = Progress._current
    if current is not None:
        current._clear()


def advance(*, files: int = 0, rows: int = 0) -> None:
    """Count work done in the step that shows progress (e.g. one file landed with its rows)."""
    current = Progress._current
    if current is not None:
        current.files += files
        current.rows += rows
