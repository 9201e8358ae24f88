"""`evident status --check`: whether the pipeline is healthy, as an exit code a scheduler can act on.

Exit 0 healthy · 1 the last run failed (or never finished), a failed or rejected batch is unresolved, or a
source's data is older than the limit · 75 a run holds the lock far longer than usual, or the health cannot
be read right now (DuckDB only, and the run in progress holds the warehouse file: DuckDB admits no reader
beside a writer in another process). When both 1 and 75 apply, 1 wins: a failure needs a person, a long run
may end by itself.

Everything here reads only. The run lock is *looked at*, never taken: the lock file's holder record (written
by control.lock.RunLock) and the kernel's table of flock() locks (/proc/locks) say whether a run holds it —
taking even a shared lock for a moment could make a starting run exit 75.

Definitions (also in the README):
- **the last run**: the newest row of evident.runs that is not the run in progress; `failed`, or still
  `running` while no run holds the lock (a killed run that never finished), makes the pipeline unhealthy.
- **a resolved failed batch**: a later batch of the same source file landed (the file was fixed and
  redelivered), or the file is no longer under the landing dir (removed, or moved aside).
- **stale**: a source whose newest landed row (`max(landed_at)`, dbt's `loaded_at_field`) is older than
  `--max-age`, or, without `--max-age`, older than its dbt source freshness `error_after`. A source that never
  landed anything is reported, not stale — unless no source ever landed anything and `--max-age` is given.
- **far longer than usual**: longer than 3× the median duration of the recent successful runs of the same
  command and kind (incremental or full refresh, from evident.builds), and never less than 15 minutes; the
  kind of a run still in progress is known once it has built, before that the longer kind's limit applies.
  `--max-run` sets the limit instead.
"""
from __future__ import annotations

import json
import os
import re
import socket
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from evident.errors import EXIT_DATA, EXIT_OK, EXIT_TEMPORARY, ConfigError

USUAL_FACTOR = 3.0
FLOOR_S = 15 * 60.0
HISTORY_RUNS = 500  # newest evident.runs rows read (every 5 minutes, about 40 hours: a nightly full refresh)
RECENT_SUCCESSES = 20  # per command and kind, for the median

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(min|sec|w|d|h|m|s)?", re.IGNORECASE)
_UNIT_S = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """`90` (seconds), `90s`, `15m`, `2h`, `1h30m`, `3d`, `1w` → seconds."""
    compact = text.strip().replace(" ", "")
    pos, total, parts = 0, 0.0, 0
    while pos < len(compact):
        match = _DURATION.match(compact, pos)
        if not match or match.end() == pos:
            break
        unit = match[2].lower() if match[2] else None
        total += float(match[1]) * _UNIT_S[unit]
        pos, parts = match.end(), parts + 1
    if not compact or pos != len(compact) or not parts:
        raise ConfigError(f"not a duration: {text!r} (examples: 90s, 15m, 2h, 1h30m, 3d)")
    return total


def describe_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def age_s(value: datetime | None, now: datetime) -> float | None:
    return (now - value).total_seconds() if value else None


# ------------------------------------------------------------------------------------------ the run lock


def lock_file_holder(duckdb_path: Path) -> dict | None:
    """The run holding the lock file beside the warehouse, or None. Reads only: the file is never created
    and never locked (see the module docstring)."""
    path = Path(f"{duckdb_path}.lock")
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
            st = os.fstat(f.fileno())
    except FileNotFoundError:
        return None
    held = _flock_held(st.st_dev, st.st_ino)
    try:
        holder = json.loads(raw.decode() or "null")
    except (ValueError, UnicodeDecodeError):  # caught between the holder's truncate and write
        holder = {}
    if not isinstance(holder, dict):
        holder = None
    if held is None:  # no /proc/locks: a record left by a killed run is told apart by its pid
        held = bool(holder) and _pid_alive(holder)
    if not held:
        return None
    return {**(holder or {}), "lock": str(path)}


def _flock_held(dev: int, ino: int) -> bool | None:
    """Whether any process holds a flock() on the file; None when the kernel's lock table is unreadable."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == wanted:  # parts[1] is "->" for a waiter
            return True
    return False


def _pid_alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another host's run: cannot be checked from here, so believed
    try:
        os.kill(int(holder["pid"]), 0)
    except (KeyError, ValueError, TypeError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


_APPLICATION = re.compile(r"evident (?P<command>\S+) run (?P<run_id>\S+) pid (?P<pid>\d+)@(?P<host>\S+)")


def postgres_lock_holder(engine, key: int) -> dict | None:
    """The session holding the Postgres half of the run lock (pg_locks), or None; a read-only query."""
    row = engine.fetchone(
        "select a.application_name, a.backend_start from pg_locks l join pg_stat_activity a using (pid) "
        "where l.locktype = 'advisory' and l.granted and l.objid = (%s::bigint & 4294967295)::oid "
        "and l.database = (select oid from pg_database where datname = current_database()) limit 1",
        [key])
    if row is None:
        return None
    match = _APPLICATION.match(row[0] or "")
    holder: dict = match.groupdict() if match else {"application_name": row[0]}
    if row[1] is not None:  # timestamptz: UTC, naive like every time in the control plane
        start = row[1].astimezone(UTC).replace(tzinfo=None) if row[1].tzinfo else row[1]
        holder["backend_start"] = start.isoformat() + "Z"
    holder["lock"] = "the Postgres advisory lock"
    return holder


# ------------------------------------------------------------------------------------------ run history


@dataclass
class RunRow:
    run_id: str
    command: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    full_refresh: bool | None = None  # known once the run has built

    @property
    def duration_s(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    @property
    def kind(self) -> str:
        return "full refresh" if self.full_refresh else "incremental"


def read_runs(engine) -> list[RunRow]:
    """The newest HISTORY_RUNS runs, newest first (run ids begin with their UTC start time, so the primary
    key orders them without a scan)."""
    rows = engine.fetchall(
        "select run_id, command, started_at, finished_at, status from evident.runs "
        f"order by run_id desc limit {HISTORY_RUNS}")
    runs = [RunRow(*row) for row in rows]
    if runs and engine.table_exists("evident", "builds"):
        oldest = min(r.run_id for r in runs)
        kinds = dict(engine.fetchall(
            "select run_id, max(case when full_refresh then 1 else 0 end) from evident.builds "
            "where run_id >= %s group by run_id", [oldest]))
        for r in runs:
            if r.run_id in kinds:
                r.full_refresh = bool(kinds[r.run_id])
    runs.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
    return runs


@dataclass
class RunLimit:
    limit_s: float
    basis: str


def usual_limit(runs: list[RunRow], command: str, full_refresh: bool | None) -> RunLimit:
    """How long a run of `command` may hold the lock before it counts as stuck (see the module docstring)."""
    by_kind: dict[bool, list[float]] = {}
    for r in runs:
        if r.command == command and r.status == "succeeded" and r.duration_s is not None:
            durations = by_kind.setdefault(bool(r.full_refresh), [])
            if len(durations) < RECENT_SUCCESSES:
                durations.append(r.duration_s)
    kinds = [full_refresh] if full_refresh is not None and full_refresh in by_kind else list(by_kind)
    if not kinds:
        return RunLimit(FLOOR_S, f"no successful `{command}` runs recorded yet: the floor of "
                                 f"{describe_duration(FLOOR_S)}")
    medians = {k: statistics.median(by_kind[k]) for k in kinds}
    kind = max(medians, key=lambda k: medians[k])
    limit = max(FLOOR_S, USUAL_FACTOR * medians[kind])
    name = "full refresh" if kind else "incremental"
    return RunLimit(limit, f"{USUAL_FACTOR:g}× the median {describe_duration(medians[kind])} of the last "
                           f"{len(by_kind[kind])} successful {name} `{command}` run(s), at least "
                           f"{describe_duration(FLOOR_S)}")


# ------------------------------------------------------------------------------------------ the verdict


@dataclass
class Problem:
    check: str  # last_run | unresolved_batch | stale | long_run | undecided
    message: str
    exit_code: int

    def as_dict(self) -> dict:
        return {"check": self.check, "message": self.message, "exit_code": self.exit_code}


@dataclass
class Verdict:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        codes = {p.exit_code for p in self.problems}
        return EXIT_DATA if EXIT_DATA in codes else EXIT_TEMPORARY if codes else EXIT_OK

    @property
    def label(self) -> str:
        return {EXIT_OK: "healthy", EXIT_DATA: "unhealthy", EXIT_TEMPORARY: "temporary"}[self.exit_code]

    def as_dict(self) -> dict:
        return {"verdict": self.label, "exit_code": self.exit_code,
                "problems": [p.as_dict() for p in self.problems], "notes": self.notes}


def assess(report: dict, *, max_age_s: float | None) -> Verdict:
    """The verdict from a status report (evident.status.read_status): the authoritative readable engine's
    facts (Postgres when configured), the run in progress and its limit."""
    verdict = Verdict()
    in_progress = report.get("run_in_progress")
    if in_progress and in_progress.get("limit_s") is not None and (in_progress.get("age_s") or 0) > \
            in_progress["limit_s"]:
        verdict.problems.append(Problem(
            "long_run", f"run {in_progress.get('run_id', '?')} ({in_progress.get('command', '?')}) has held the "
                        f"lock for {describe_duration(in_progress['age_s'])}, far longer than usual (limit "
                        f"{describe_duration(in_progress['limit_s'])}: {in_progress['limit_basis']}); "
                        "is it stuck?", EXIT_TEMPORARY))
    facts = next((e for e in report["engines"] if e.get("readable")), None)
    if facts is None:
        busy = "; ".join(f"{e['engine']}: {e.get('busy') or e.get('not_set_up')}" for e in report["engines"])
        if any(e.get("busy") for e in report["engines"]):
            verdict.problems.append(Problem(
                "undecided", f"the control plane cannot be read while the run in progress holds the warehouse "
                             f"({busy}); DuckDB admits no reader beside a writer in another process — check "
                             "again after the run (with EVIDENT_POSTGRES_DSN set, status reads Postgres "
                             "instead)", EXIT_TEMPORARY))
        else:
            verdict.notes.append("nothing has run here yet")
        return verdict
    if facts["engine"] != report["engines"][0]["engine"]:
        verdict.notes.append(f"facts from {facts['engine']} ({report['engines'][0]['engine']} unreadable)")
    last = facts.get("last_run")
    if last and last["status"] != "succeeded":
        how = "never finished (killed or crashed?)" if last["status"] == "interrupted" else "failed"
        error = f": {last['error']}" if last.get("error") else ""
        verdict.problems.append(Problem(
            "last_run", f"the last run {last['run_id']} ({last['command']}, started {last['started_at']}) "
                        f"{how}{error}", EXIT_DATA))
    for b in facts.get("unresolved_failures", []):
        verdict.problems.append(Problem(
            "unresolved_batch", f"{b['source_file']} ({b['source']}) failed {b['failed_at']} and is still "
                                f"unresolved: {b['reason']} — fix and redeliver it under the same path, or "
                                "move it out of the landing dir", EXIT_DATA))
    sources = facts.get("sources", {})
    landed = {name: s for name, s in sources.items() if s.get("newest_landed_at")}
    if max_age_s is not None and sources and not landed:
        verdict.problems.append(Problem("stale", "no source has landed any data yet", EXIT_DATA))
    for name, s in sources.items():
        if not s.get("newest_landed_at"):
            verdict.notes.append(f"{name}: nothing landed yet")
            continue
        limit = max_age_s
        basis = "--max-age"
        freshness = s.get("freshness") or {}
        if limit is None and freshness.get("error_after_s") is not None:
            limit, basis = freshness["error_after_s"], "its dbt source freshness error_after"
        if limit is not None and s["newest_landed_age_s"] > limit:
            verdict.problems.append(Problem(
                "stale", f"{name}: newest data landed {s['newest_landed_at']}, "
                         f"{describe_duration(s['newest_landed_age_s'])} ago — older than "
                         f"{describe_duration(limit)} ({basis})", EXIT_DATA))
        elif freshness.get("status") == "warn":
            verdict.notes.append(f"{name}: dbt source freshness warns (newest data "
                                 f"{describe_duration(s['newest_landed_age_s'])} old)")
    return verdict
