"""The `evident` command line. Thin: parse options, call library functions, map errors to exit codes once."""
from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

import click

from evident import logs
from evident.config import load_settings, require_landing_dir
from evident.errors import EXIT_DATA, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, ConfigError, EvidentError
from evident.secrets import redact

log = logging.getLogger("evident")


def _echo(text: str, err: bool = False, **fields) -> None:
    """A command's output: the text, or in json mode one JSON line with the run's context and `fields`."""
    logs.echo(redact(text), err=err, **fields)


# What `evident --help` lists after the commands (README: Configuration, exit codes).
ENVIRONMENT = (
    ("EVIDENT_PROJECT_DIR", "the project folder (default: the nearest one upward from the working directory)"),
    ("EVIDENT_DUCKDB_PATH", "the DuckDB warehouse file (default warehouse/warehouse.duckdb)"),
    ("EVIDENT_POSTGRES_DSN", "the authoritative Postgres, a libpq URL or DSN (unset: DuckDB only)"),
    ("EVIDENT_LANDING_DIR", "where source files are read from (default data/landing)"),
    ("EVIDENT_LAND_WORKERS", "validation processes for land (default: by input size)"),
    ("EVIDENT_LOG_FORMAT", "text or json, same as --log-format"),
    ("EVIDENT_LOG_LEVEL", "debug, info, warning or error, same as --log-level"),
    ("EVIDENT_CODE_REVISION", "the code revision to record (default: the project's git commit)"),
)
EXIT_CODES = (
    ("0", "success"),
    ("1", "the data failed: a batch rejected, the gate failed, a reconciliation mismatch"),
    ("2", "usage or configuration error"),
    ("70", "internal error, a bug: the message names the file holding the traceback"),
    ("75", "temporary: another run holds the lock, or retries were exhausted; rerun later"),
)


class EvidentGroup(click.Group):
    """`evident --help`: each command's first sentence in full (click cuts it at the terminal width with
    "..."), then the environment variables and the exit codes."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, command.get_short_help_str(limit=200))
                for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Environment (a .env file in the project folder may set these too)"):
            formatter.write_dl(list(ENVIRONMENT))
        with formatter.section("Exit codes"):
            formatter.write_dl(list(EXIT_CODES))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from evident.revision import code_revision

    try:
        from evident.project import find_project

        root, where = find_project().root, "project"
    except EvidentError:  # outside a project: the revision of the code itself
        root, where = Path(__file__).resolve().parent, "package"
    click.echo(f"evident {_version()} (code revision {code_revision(root)}, {where} {root})")
    ctx.exit(EXIT_OK)


@click.group(cls=EvidentGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the version and the code revision, then exit.")
@click.option("--log-format", type=click.Choice(logs.FORMATS), default="text", show_default=True,
              envvar="EVIDENT_LOG_FORMAT", show_envvar=True,
              help="text for people; json: every line on stdout and stderr is one JSON object with the run id.")
@click.option("--log-level", type=click.Choice(logs.LEVELS), default="info", show_default=True,
              envvar="EVIDENT_LOG_LEVEL", show_envvar=True, help="Least severe log records shown (on stderr).")
def cli(log_format: str, log_level: str) -> None:
    """Evident: land, build, gate, publish and reconcile every source and published model — and prove what
    happened."""
    logs.configure(log_format, log_level)


SAMPLE_SOURCES = ("app_events", "orders")  # the reference pipelines that ship a sample generator


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write the sample files into (each source under its landing folder).")
@click.option("--source", type=click.Choice([*SAMPLE_SOURCES, "all"]), default="all", show_default=True,
              help="Which reference source to write.")
@click.option("--events", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Records per source (app events; order versions, about 4 per order).")
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--defect-rate", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Share of records replaced by planted defects (every reason code).")
def sample(out_dir: Path, source: str, events: int, days: int, seed: int, defect_rate: float) -> None:
    """Write a deterministic sample of the reference sources (same seed → byte-identical files)."""
    from evident.project import find_project
    from evident.sample import generate_sample
    from evident.samples.orders import generate_orders_sample

    find_project()  # the sample follows the project's contracts: outside a project, exit 2 like every command
    try:
        if source in ("app_events", "all"):
            result = generate_sample(out_dir, events=events, days=days, seed=seed, defect_rate=defect_rate)
            _echo(f"app_events: wrote {len(result.files)} files, {result.events_written} events "
                  f"({result.duplicate_deliveries} duplicate deliveries, {result.late_events} late, "
                  f"{len(result.defects)} planted defects) under {out_dir / 'app_events'}")
        if source in ("orders", "all"):
            orders = generate_orders_sample(out_dir, orders=max(1, events // 4), days=days, seed=seed,
                                            defect_rate=defect_rate)
            _echo(f"orders: wrote {len(orders.files)} files, {orders.rows_written} rows of {orders.orders} "
                  f"orders ({orders.duplicate_deliveries} duplicate deliveries, {orders.late_versions} late, "
                  f"{orders.out_of_order_versions} out of order, {len(orders.defects)} planted defects) under "
                  f"{out_dir / 'orders'}")
    except ValueError as exc:
        raise ConfigError(f"cannot generate that sample: {exc}") from None


def _wait_option(f):
    """`--wait` (up to 6 h), `--wait=SECONDS` or `--wait-timeout SECONDS`. The command gets `wait`: None (do not
    wait: exit 75 at once when another run holds the lock) or the seconds to wait before exiting 75."""
    from evident.control.lock import DEFAULT_WAIT_S, describe_wait

    @functools.wraps(f)
    def command(*args, wait: float | None, wait_timeout: float | None, **kwargs):
        return f(*args, wait=wait_timeout if wait_timeout is not None else wait, **kwargs)

    command = click.option(
        "--wait-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
        help="Same as --wait=SECONDS.")(command)
    return click.option(
        "--wait", type=click.FloatRange(min=0), is_flag=False, flag_value=DEFAULT_WAIT_S, default=None,
        metavar="[SECONDS]",
        help=f"When another Evident run holds the warehouse lock, wait for it — up to SECONDS, default "
             f"{describe_wait(DEFAULT_WAIT_S)} — instead of exiting 75 at once.")(command)


@cli.command()
@_wait_option
def land(wait: float | None) -> None:
    """Land every new file under the landing dir into raw.<source> (every configured engine)."""
    from evident.land.step import land as land_step
    from evident.pipeline.context import open_run

    settings = load_settings()
    require_landing_dir(settings)
    with open_run(settings, "land", wait) as ctx:
        outcomes = land_step(ctx)
        _print_land(outcomes, ctx.detail.get("unrouted", []))
        rejected = [o for o in outcomes if o.status == "rejected"]
    if rejected:
        raise click.exceptions.Exit(EXIT_DATA)


def _print_land(outcomes, unrouted: list[str]) -> None:
    from evident.land.step import summarize, unrouted_note

    note = unrouted_note(unrouted)
    if note:
        _echo(note, err=True)
    if not outcomes:
        _echo("no source files under the landing dir")
    for o in outcomes:
        if logs.json_mode():  # one line per batch, with its id and counts
            from evident.pipeline.run import batch_facts

            _echo(f"batch {o.batch_id} {o.status} [{o.engine}] {o.source_file}", event="batch",
                  level="error" if o.status == "rejected" else "info", **batch_facts(o))
        if o.status == "rejected":
            _echo(f"REJECTED [{o.engine}] {o.message}", err=True)
        elif o.status == "previously_rejected":
            _echo(f"skipped [{o.engine}] {o.source_file}: rejected earlier under the same contract", err=True)
    for engine, s in summarize(outcomes).items():
        batches = ", ".join(f"{k} {v}" for k, v in sorted(s["batches"].items()))
        _echo(f"[{engine}] batches: {batches}; rows in {s['rows_in']}, landed {s['rows_landed']}, "
              f"quarantined {s['rows_quarantined']}, duplicate {s['rows_duplicate']}")


def _duration(ctx, param, value: str | None) -> float | None:
    from evident.health import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except EvidentError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check", is_flag=True,
              help="Health check: exit 0 healthy; 1 last run failed, a rejected batch is unresolved or data is "
                   "stale; 75 a run holds the lock far longer than usual (or, DuckDB only, the run in progress "
                   "holds the warehouse so nothing can be read now).")
@click.option("--max-age", callback=_duration, metavar="DURATION",
              help="With --check: data landed longer ago than this (e.g. 6h, 90m, 2d) is stale; default: each "
                   "source's dbt freshness error_after.")
@click.option("--max-run", callback=_duration, metavar="DURATION",
              help="With --check: a run holding the lock longer than this is stuck; default 3x the median of "
                   "recent successful runs, at least 15m.")
def status(as_json: bool, check: bool, max_age: float | None, max_run: float | None) -> None:
    """Runs, batches, sources, freshness, gate and reconciliation per engine (reads only; --check: health)."""
    from evident.health import assess
    from evident.land.sources import load_sources
    from evident.status import read_status, render

    settings = load_settings()
    # Read-only: status never creates a warehouse file, a schema or a table (a mistyped path is exit 2), and
    # never takes the run lock (it works while a run holds it).
    report = read_status(settings, load_sources(settings.project), max_run_s=max_run)
    verdict = assess(report, max_age_s=max_age) if check else None
    if as_json:
        document = report["engines"] if verdict is None else {**report, "health": verdict.as_dict()}
        logs.document(document)  # indented; one line under --log-format json, so every line is still JSON
    else:
        _echo(render(report, verdict))
    if verdict is not None and verdict.exit_code:
        raise click.exceptions.Exit(verdict.exit_code)


@cli.command()
@click.option("--full-refresh", is_flag=True, help="Rebuild the marts from all raw rows.")
@click.option("--target", type=click.Choice(["all", "duckdb", "postgres"]), default="all", show_default=True,
              help="Which configured engine(s) to build.")
@_wait_option
def build(full_refresh: bool, target: str, wait: float | None) -> None:
    """dbt build (incremental unless --full-refresh) on each configured engine; landed batches become built."""
    from evident.build.step import build as build_step
    from evident.pipeline.context import open_run

    settings = load_settings()
    with open_run(settings, "build", wait) as ctx:
        for result in build_step(ctx, full_refresh=full_refresh, target=target):
            _echo(f"{result.outcome.summary()}; {result.batches_built} batch(es) now built{result.unit_tests_note}")


@cli.command()
@_wait_option
def gate(wait: float | None) -> None:
    """Validate the audit area (analytics.*, raw) with the Great Expectations suites on every engine."""
    from evident.gate.step import gate as gate_step
    from evident.pipeline.context import open_run

    with open_run(load_settings(), "gate", wait) as ctx:
        report = gate_step(ctx)
        _echo(report.summary())


@cli.command()
@_wait_option
def publish(wait: float | None) -> None:
    """Make published.* equal the audited marts, atomically; refused unless the gate passed on this build."""
    from evident.gate.step import passing_gates
    from evident.pipeline.context import open_run
    from evident.publish.step import publish as publish_step

    with open_run(load_settings(), "publish", wait) as ctx:
        for p in publish_step(ctx, passing_gates(ctx)):
            _echo(f"[{p.engine}] published.{p.table}: {p.rows} rows (+{p.rows_inserted} −{p.rows_deleted})")


@cli.command()
@click.option("--table", "tables", multiple=True,
              help="raw.<source> or a published model, e.g. raw.orders, fct_sessions (repeatable; default all).")
@click.option("--date-from", help="First partition date to compare (YYYY-MM-DD).")
@click.option("--date-to", help="Last partition date to compare (YYYY-MM-DD).")
@click.option("--full", is_flag=True,
              help="Hash every partition's rows, not only those written to since reconciliation last hashed them.")
@_wait_option
def reconcile(tables: tuple[str, ...], date_from: str | None, date_to: str | None, full: bool,
              wait: float | None) -> None:
    """Compare every raw source and published model between DuckDB and Postgres; report differing keys."""
    from evident.pipeline.context import open_run
    from evident.reconcile.step import run_reconcile

    with open_run(load_settings(), "reconcile", wait) as ctx:
        _echo(run_reconcile(ctx, tables=tables or None, date_from=date_from, date_to=date_to, full=full).render())


@cli.group()
def suite() -> None:
    """The gate's Great Expectations suites (expectations/gx/expectations/)."""


@suite.command("init")
@click.argument("name")
@click.option("--force", is_flag=True, help="Replace an existing suite with the baseline.")
def suite_init(name: str, force: bool) -> None:
    """Write the baseline suite NAME: raw_<source> from the source's contract, <model> from the published
    model's dbt contract and meta.evident.key (grain unique, not-null columns, enums, ranges)."""
    from evident.gate.suites import write_baseline
    from evident.project import find_project

    path, count = write_baseline(find_project(), name, force=force)
    _echo(f"suite {name}: wrote {count} expectations to {path}; review it and add the checks the contract "
          "cannot know (ranges, identities), then `evident gate`")


@cli.command()
@click.option("--full-refresh", is_flag=True,
              help="Rebuild the marts from all raw rows, beside the incremental ones: drift between them is "
                   "reported (evident.drift_reports) before the full refresh is gated and published; "
                   "reconciliation then hashes every partition (as reconcile --full).")
@click.option("--fail-on-drift", is_flag=True,
              help="With --full-refresh: exit 1 when the incremental marts differed from the full refresh "
                   "(default: a warning, exit 0).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document summarising the run on stdout (progress and the text summary go to "
                   "stderr).")
@_wait_option
def run(full_refresh: bool, fail_on_drift: bool, as_json: bool, wait: float | None) -> None:
    """Land everything new, build, gate, publish (and reconcile when Postgres is configured)."""
    from evident.pipeline.run import run_pipeline

    if fail_on_drift and not full_refresh:
        raise click.UsageError("--fail-on-drift needs --full-refresh (drift is what a full refresh finds)")
    settings = load_settings()
    require_landing_dir(settings)
    code = run_pipeline(settings, full_refresh=full_refresh, wait=wait, fail_on_drift=fail_on_drift,
                        echo=functools.partial(_echo, err=True) if as_json else _echo,
                        on_summary=logs.document if as_json else None)
    if code:
        raise click.exceptions.Exit(code)


@cli.command()
def docs() -> None:
    """Build dbt docs and the Data Docs of the gate, both readable from disk."""
    from evident.docs import build_docs

    dbt_docs, data_docs = build_docs(load_settings())
    _echo(f"dbt docs: {dbt_docs}")
    _echo(f"Data Docs: {data_docs}")


@cli.command("setup-roles")
@click.option("--role", default="evident_reader", show_default=True, help="Name of the read-only role.")
def setup_roles(role: str) -> None:
    """Create a Postgres role that can read published.* and nothing else (grant it to your BI users)."""
    from evident.pipeline.context import connect_engines
    from evident.roles import setup_reader_role

    settings = load_settings()
    if not settings.postgres_dsn:
        raise ConfigError("setup-roles needs EVIDENT_POSTGRES_DSN (DuckDB has no roles: its file permissions "
                          "are the access control)")
    engines = connect_engines(settings, "evident setup-roles")
    try:
        for engine in engines:
            if engine.SUPPORTS_ROLES:
                setup_reader_role(engine, role)
    finally:
        for engine in engines:
            engine.close()
    _echo(f"role {role}: usage on schema published, select on its tables (now and future); nothing else. "
          f"Grant it with: grant {role} to <login role>;")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the one place where errors become exit codes."""
    if logs.json_mode_requested(sys.argv[1:] if argv is None else argv, dict(os.environ)):
        logs.configure("json")  # before click parses: a usage error in the group's own options is JSON too
    try:
        return _main(argv)
    finally:
        logs.restore()  # flushes a partial last line of wrapped output


def _main(argv: list[str] | None) -> int:
    try:
        # standalone_mode=False: click returns the code of a command's click.exceptions.Exit instead of exiting
        code = cli.main(args=argv, standalone_mode=False, prog_name="evident")
        return code if isinstance(code, int) else EXIT_OK
    except EvidentError as exc:
        _echo(f"error ({exc.reason}): {exc}", err=True, event="error", reason=exc.reason, exit_code=exc.exit_code)
        return exc.exit_code
    except click.exceptions.Abort:
        _echo("aborted", err=True, event="error", reason="aborted", exit_code=EXIT_USAGE)
        return EXIT_USAGE
    except click.ClickException as exc:
        if logs.json_mode():
            _echo(f"Error: {exc.format_message()}", err=True, event="error", reason="usage", exit_code=EXIT_USAGE)
        else:
            exc.show()
        return EXIT_USAGE
    except KeyboardInterrupt:
        if logs.json_mode():
            _echo("interrupted", err=True, event="error", reason="interrupted", exit_code=130)
        return 130
    except Exception as exc:  # not an EvidentError: a bug, whatever it is
        report = write_crash_report(exc, argv)
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        _echo(f"internal error (a bug in Evident): {what} — traceback written to "
              f"{report or '(could not write it; see below)'}; please report it", err=True, event="error",
              reason="internal", exit_code=EXIT_INTERNAL, crash_report=str(report) if report else None)
        if report is None:
            _echo("".join(traceback.format_exception(exc)), err=True)
        return EXIT_INTERNAL


def write_crash_report(exc: BaseException, argv: list[str] | None) -> Path | None:
    """The full traceback of an internal error, redacted, in <project>/target/crash/<UTC time>-<pid>.txt (or
    the temp dir outside a project or when that folder is not writable); None when nothing could be written."""
    now = datetime.now(UTC)
    text = "".join([
        f"evident {' '.join(sys.argv[1:] if argv is None else argv)}\n",
        f"at {now.isoformat(timespec='seconds')} pid {os.getpid()} evident {_version()} "
        f"python {sys.version.split()[0]} "
        f"cwd {os.getcwd()}\n\n",
        *traceback.format_exception(exc),
    ])
    name = f"{now:%Y%m%dT%H%M%SZ}-{os.getpid()}.txt"
    for folder in _crash_folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(redact(text), encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("evident")
    except Exception:  # not installed (run from a source tree)
        return "unknown"


def _crash_folders() -> list[Path]:
    folders = []
    try:
        from evident.project import find_project

        folders.append(find_project().target_dir / "crash")
    except Exception:  # outside a project (or the project itself is the problem): the temp dir will do
        pass
    folders.append(Path(tempfile.gettempdir()) / "evident-crash")
    return folders


if __name__ == "__main__":
    sys.exit(main())
