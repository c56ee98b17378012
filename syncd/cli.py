"""`syncd` command line: argparse -> one handler per command -> an exit status. The only place that
configures logging. Handlers import the packages they drive lazily, so a broken optional area
(the sandbox, the daemon) cannot break `syncd --help` or the other commands.

Exit status: 0 success, 1 a run failed (or was interrupted), 2 usage error, 3 blocked by a safety
guard or the job is busy in another process, 78 configuration error (EX_CONFIG: systemd's
RestartPreventExitStatus= keeps it from restart-looping).

Human output goes to stdout, except for the long-running commands (`run`, `sandbox`), whose
human lines go to stderr; logs are JSON lines on stdout unless stdout is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import structlog

from syncd import __version__
from syncd.config import Config, JobConfig, load_config, require_api_key
from syncd.errors import ConfigError, JobBusy, SchemaError, SyncdError, UsageError
from syncd.logs import configure_logging, redact, register_secret
from syncd.oneshot import (
    EXIT_BLOCKED,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    stop_on_signals,
    sync_jobs,
)

if TYPE_CHECKING:
    pass

log = structlog.get_logger(__name__)
T = TypeVar("T")


def entry() -> NoReturn:
    """The `syncd` console script and `python -m syncd`: `main`, then exit with its status.
    Before the interpreter's teardown the heap is frozen (gc.freeze): the final collection then
    skips the objects the command leaves behind, about 0.1 s of every `syncd sync`'s wall time
    spent on nothing. Not in `main`, which tests call in-process."""
    code = main()
    gc.freeze()
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (`entry` exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging("info", "auto")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {redact(problem)}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as exc:
        print(f"syncd: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except SchemaError as exc:
        print(f"syncd: database: {redact(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except JobBusy as exc:
        print(f"syncd: {redact(str(exc))}", file=sys.stderr)
        return EXIT_BLOCKED
    except SyncdError as exc:
        print(f"syncd: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("command_crashed", command=args.command)
        return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    # -c is accepted before and after the command; SUPPRESS keeps a later default from erasing it
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "-c",
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="config file (default: $SYNCD_CONFIG, then /etc/syncd/config.toml)",
    )
    parser = argparse.ArgumentParser(
        prog="syncd",
        parents=[config],
        description="Keep a PostgreSQL contact table and a Selzy contact list in step.",
        epilog="exit status: 0 ok, 1 run failed, 2 usage, 3 blocked or busy, 78 configuration",
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> Any:
        p = sub.add_parser(name, parents=[config], help=text, description=text)
        p.set_defaults(handler=handler)
        return p

    command("migrate", _migrate, "create or upgrade syncd's own schema (idempotent)")
    command("check", _check, "validate the config, reach PostgreSQL and Selzy, verify everything")
    p = command("sync", _sync, "one reconciliation run now, for all jobs or the named ones")
    p.add_argument("--job", action="append", metavar="NAME", help="only this job (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument(
        "--allow-mass-delete", action="store_true", help="let this run pass the deletion guard"
    )
    command("run", _run, "the daemon: schedule every job until SIGTERM")
    p = command("runs", _runs, "recent runs from the run log, newest first")
    p.add_argument("--job", metavar="NAME", help="only runs of this job")
    p.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="default 20")
    p.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    p = command("sandbox", _sandbox, "a local Selzy-compatible API server (no config needed)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    p.add_argument("--port", type=_port, default=8765, help="default 8765")
    p.add_argument("--state-file", type=Path, metavar="F", help="keep state in this file")
    p.add_argument("--export-delay", type=_seconds, metavar="S", help="export task delay")
    command("demo", _demo, "the quick start: a demo database, the sandbox, a few runs")
    p = command("explain", _explain, "everything syncd knows of one contact, and why")
    p.add_argument("contact", metavar="EMAIL|PHONE", help="the contact's email or phone")
    p.add_argument("--job", action="append", metavar="NAME", help="only this job (repeatable)")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p = command("plan", _plan, "a dry run that stores the complete plan (apply executes it)")
    p.add_argument("--job", action="append", metavar="NAME", help="the job to plan")
    p.add_argument("--out", type=Path, metavar="FILE", help="also write it as JSON lines (.gz)")
    p.add_argument(
        "--allow-mass-delete", action="store_true", help="the deletions were reviewed: apply them"
    )
    p = command("apply", _apply, "execute exactly a stored plan; what changed since is drift")
    p.add_argument("plan_id", type=_positive_int, metavar="PLAN", help="the plan's id")
    p = command("status", _status, "per job: schedule, last run, last success, next run, counts")
    p.add_argument("--job", action="append", metavar="NAME", help="only this job (repeatable)")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    command("alert-test", _alert_test, "send a sample alert to every configured channel")
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _load(args: argparse.Namespace) -> Config:
    """Load the config, register its secrets for redaction, then set up logging as it says."""
    cfg = load_config(getattr(args, "config", None))
    if cfg.selzy.api_key:
        register_secret(cfg.selzy.api_key.reveal())
    if cfg.database.dsn:
        register_secret(cfg.database.dsn.reveal())
    configure_logging(cfg.log.level, cfg.log.format)
    return cfg


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- migrate, check, runs -----------------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    from syncd.db import migrate

    cfg = _load(args)
    applied = _run_async(migrate(cfg.database))
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print("schema is up to date")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from syncd.checks import run_checks

    cfg = _load(args)
    report = _run_async(run_checks(cfg))
    for name, ok, detail in report:
        print(f"{'ok' if ok else 'FAIL':<4} {name}: {redact(detail)}")
    problems = report.problems
    print(f"{len(problems)} problem(s) found" if problems else "everything checks out")
    return EXIT_CONFIG if problems else EXIT_OK


def _runs(args: argparse.Namespace) -> int:
    cfg = _load(args)

    async def fetch() -> int:
        from syncd.db import connect, ensure_schema, format_runs_table, recent_runs, run_as_dict

        conn = await connect(cfg.database)
        try:
            await ensure_schema(conn)
            runs = await recent_runs(conn, job=args.job, limit=args.limit)
        finally:
            await conn.close()
        if args.json:
            print(json.dumps([run_as_dict(r) for r in runs], indent=2, default=str))
        elif runs:
            print(format_runs_table(runs))
        else:
            print("no runs recorded yet" + (f" for job {args.job!r}" if args.job else ""))
        return EXIT_OK

    return _run_async(fetch())


def _explain(args: argparse.Namespace) -> int:
    from syncd.explain import gather, render

    cfg = _load(args)
    jobs = select_jobs(cfg, args.job)
    records = _run_async(gather(cfg, jobs, args.contact))
    if not records:
        print(f"unknown contact: no job's table, list or ledger holds {args.contact!r}")
        return EXIT_FAILED
    print(render(records, jobs, as_json=args.json))
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from syncd.plans import make_plan, planning_job

    cfg = _load(args)
    job = planning_job(cfg, args.job)
    require_api_key(cfg)
    return _run_async(make_plan(cfg, job, out=args.out, allow_mass_delete=args.allow_mass_delete))


def _apply(args: argparse.Namespace) -> int:
    from syncd.plans import apply_plan

    cfg = _load(args)
    require_api_key(cfg)
    return _run_async(apply_plan(cfg, args.plan_id))


def _status(args: argparse.Namespace) -> int:
    from syncd.status import gather, render

    cfg = _load(args)
    jobs = select_jobs(cfg, args.job)
    print(render(_run_async(gather(cfg, jobs)), as_json=args.json))
    return EXIT_OK


def _alert_test(args: argparse.Namespace) -> int:
    from syncd.alerts import AlertEngine

    alerts = _load(args).alerts
    if alerts is None:
        raise ConfigError("no [alerts] section: no alert channel to test")

    async def send() -> dict[str, bool]:
        async with AlertEngine(alerts) as engine:
            return await engine.send_test()

    results = _run_async(send())
    for channel, ok in results.items():
        print(f"{'ok' if ok else 'FAIL':<4} {channel}" + ("" if ok else ": see the log"))
    return EXIT_OK if all(results.values()) else EXIT_FAILED


# --- sync ----------------------------------------------------------------------------------


def _sync(args: argparse.Namespace) -> int:
    cfg = _load(args)
    jobs = select_jobs(cfg, args.job)
    require_api_key(cfg)
    return _run_async(
        sync_jobs(cfg, jobs, dry_run=args.dry_run, allow_mass_delete=args.allow_mass_delete)
    )


def select_jobs(cfg: Config, names: Sequence[str] | None) -> list[JobConfig]:
    """The jobs named on the command line, in config order; an unknown name is a usage error."""
    if not names:
        return list(cfg.jobs)
    known = {job.name for job in cfg.jobs}
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise UsageError(f"unknown job {listed}; configured jobs: {', '.join(sorted(known))}")
    return [job for job in cfg.jobs if job.name in names]


# --- run, sandbox, demo --------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from syncd.daemon import run_daemon

    cfg = _load(args)
    require_api_key(cfg)
    result: Any = run_daemon(cfg, cfg.path)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return int(result)


def _sandbox(args: argparse.Namespace) -> int:
    from syncd.sandbox import SandboxOptions, serve

    key = os.environ.get("SELZY_API_KEY", "").strip() or "sandbox"
    if key != "sandbox":
        register_secret(key)
    extra: dict[str, Any] = {}
    if args.export_delay is not None:
        extra["export_delay"] = args.export_delay
    options = SandboxOptions(
        host=args.host, port=args.port, api_keys=(key,), state_file=args.state_file, **extra
    )
    where = f"http://{args.host}:{args.port}/en/api"
    print(f"sandbox: serving the Selzy API at {where} (stop with Ctrl-C)", file=sys.stderr)
    try:
        return _run_async(_until_signal(serve(options)))
    except OSError as exc:
        print(f"syncd: sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _until_signal(coro: Coroutine[Any, Any, Any]) -> int:
    """Run a serve-forever coroutine until SIGTERM/SIGINT; a clean stop is exit 0."""
    task = asyncio.create_task(coro)
    stop = asyncio.Event()
    with stop_on_signals(stop):
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return EXIT_OK
    task.result()  # it ended by itself: surface its exception
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from syncd.demo import main as demo_main

    return int(demo_main())
