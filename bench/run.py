"""Reconciliation benchmark: N contacts on both sides, measured through the real CLI.

For each table shape (bench/shapes.py) and N: a fresh database with N local contacts and a fresh
sandbox (`syncd sandbox`, Selzy's real rate limits), then `syncd sync` as a separate process:

1. the first full sync from an empty list (N adds),
2. settle runs while a run still changes something (the first writeback of every status),
3. a no-change run, `--repeats` times,
4. a floor on the same data: psql `\\copy` of the list's export file + one hash join (floor.py),
   the fastest of `--floor-repeats`,
5. a 1%-change run (N/100 rows edited locally), `--repeats` times, each on other rows and after
   settle runs that leave nothing to do (the previous one's contacts are planned once more),

recording wall time, syncd's own seconds per phase (syncd.runs.timings), importContacts calls
(the sandbox's call log) against ceil(changes / 500), rate-limit errors (api_errors of the
run_finished log line) and peak RSS (GNU time %M). Results: bench/out/reconcile-*.json and
markdown tables for bench/README.md, with PASS/FAIL against the targets (report.py).

    .venv/bin/python bench/run.py --sizes 100000,1000000 --shapes narrow,wide
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import databases
import floor as floors
import report
from harness import (
    Sandbox,
    SyncRun,
    code_fingerprint,
    machine_facts,
    restore_state,
    run_sync,
    tail,
)
from shapes import SHAPES, Shape, job_config

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SNAPSHOTS = OUT / "snapshots"
BATCH = 500  # contacts per importContacts call
MAX_SETTLE = 3  # settle runs before the no-change run is taken as it comes
BUSY_LOAD = 0.5  # 1-minute load average per CPU above which the figures are flagged
EFFECTS = ("added", "updated", "deleted", "excluded", "opted_out", "imported", "written_back")


class RunFailed(Exception):
    """A `syncd sync` of the sequence did not exit 0: later scenarios would measure nothing."""


@dataclass(frozen=True)
class Options:
    syncd: Path
    export_delay: float
    floor_repeats: int
    repeats: int  # no-change and 1% runs each; the fastest is judged, as for the floor
    skip_first_sync: bool
    package: str  # the syncd package directory the executable imports
    code: str  # a hash of that package's code and SQL (harness.code_fingerprint)


class Bench:
    """One shape at one N: its database, its sandbox and its runs, in order."""

    def __init__(self, shape: Shape, n: int, opts: Options) -> None:
        self.shape, self.n, self.opts = shape, n, opts
        self.dir = OUT / f"{shape.name}-{n}"
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in (*self.dir.glob("[0-9][0-9]-*.log"), self.dir / "sandbox.log"):
            old.unlink(missing_ok=True)
        self.database = f"syncd_bench_{shape.name}_{n}"
        self.dsn = databases.dsn_of(self.database)
        self.config = self.dir / "config.toml"
        self.sandbox = Sandbox(
            opts.syncd,
            self.dir / "sandbox.sqlite",
            export_delay=opts.export_delay,
            log=self.dir / "sandbox.log",
        )
        self.snapshot = SNAPSHOTS / f"{shape.name}-{n}"
        self.rows: list[dict[str, Any]] = []

    def run(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The runs in order and the floor; a failed run ends the sequence (floor None)."""
        try:
            return self._sequence()
        except RunFailed as exc:
            print(f"  stopped: {exc}", file=sys.stderr, flush=True)
            return self.rows, None
        finally:
            self.sandbox.stop()

    def _sequence(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        restored = self._restore() if self.opts.skip_first_sync else None
        if restored is None:
            list_id = self._fresh()
            self.scenario("first full sync", changes=self.n)
            self.sandbox.restart()  # the next run starts with an empty rate-limit window
            self._settle()
            self._save_snapshot(list_id)
        else:
            list_id, same_code = restored
            # State left by other code may still hold one-time work for this code (a migration
            # that fills a new table, say): that run must not pass for the no-change run.
            self._settle(first_is_settle=not same_code)
        for _ in range(1, self.opts.repeats):
            self.scenario(report.NO_CHANGE, changes=0)
        measured = self._floor(list_id)
        for residue in range(self.opts.repeats):
            if residue:  # the previous 1% run's contacts are planned once more, then settled
                self._settle(label="settle run after 1%", idle_label="settle run after 1%")
            edits = self.shape.edits(self.n, residue)
            databases.execute(self.dsn, (self.shape.edit, (self.n, residue)))
            self.scenario(report.ONE_PERCENT, changes=edits)
        return self.rows, measured

    def _fresh(self) -> int:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.sandbox.state}{suffix}").unlink(missing_ok=True)
        self.sandbox.start()
        list_id = int(self.sandbox.api("createList", [("title", "bench")])["id"])
        for name in self.shape.user_fields:
            self.sandbox.api("createField", [("name", name), ("type", "string")])
        databases.create_database(self.database, self.shape, self.n)
        self._configure(list_id)
        return list_id

    def _restore(self) -> tuple[int, bool] | None:
        """(list id, whether the state was made by this very code), or None without one."""
        meta_path = self.snapshot.with_suffix(".json")
        if not meta_path.exists():
            print(f"  no snapshot at {meta_path}: running the first full sync", flush=True)
            return None
        meta = json.loads(meta_path.read_text())
        if not databases.database_exists(meta["database"]):
            print(f"  snapshot database {meta['database']} is gone: first full sync", flush=True)
            return None
        same_code = bool(self.opts.code) and meta.get("code") == self.opts.code
        print(
            f"  reusing the settled state of {meta['created']} ({meta['syncd']},"
            f" {'the same code' if same_code else 'other code: one settle run first'})",
            flush=True,
        )
        databases.copy_database(meta["database"], self.database)
        restore_state(self.snapshot.with_suffix(".sqlite"), self.sandbox.state)
        self.sandbox.start()
        self._configure(int(meta["list_id"]))
        return int(meta["list_id"]), same_code

    def _save_snapshot(self, list_id: int) -> None:
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        database = f"{self.database}_settled"
        databases.copy_database(self.database, database)
        self.sandbox.backup(self.snapshot.with_suffix(".sqlite"))
        meta = {
            "database": database,
            "list_id": list_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "syncd": str(self.opts.syncd),
            "code": self.opts.code,
        }
        self.snapshot.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")

    def _configure(self, list_id: int) -> None:
        self.config.write_text(
            job_config(self.shape, dsn=self.dsn, base_url=self.sandbox.api_url, list_id=list_id)
        )
        subprocess.run(
            [str(self.opts.syncd), "-c", str(self.config), "migrate"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _settle(
        self,
        *,
        first_is_settle: bool = False,
        label: str = "settle run",
        idle_label: str = report.NO_CHANGE,
    ) -> None:
        """Settle runs while a run still changes something; the first that changes nothing is
        `idle_label`, the no-change run (after MAX_SETTLE, the next run is taken as it)."""
        for attempt in range(1, MAX_SETTLE + 1):
            row = self.scenario(f"{label} {attempt}", changes=0, quiet=True)
            # a run that wrote the contact digest changed syncd's own state: not yet settled
            idle = (
                not any(row["counts"].get(k) for k in EFFECTS)
                and not row["import_calls"]
                and not row["digest_written"]
            )
            if idle and not (first_is_settle and attempt == 1):
                row["scenario"] = idle_label
                log = ROOT / row["log"]
                renamed = log.rename(log.with_name(log.name[:3] + _slug(idle_label) + ".log"))
                row["log"] = str(renamed.relative_to(ROOT))
                self._show(row)
                return
            self._show(row)
        self.scenario(idle_label, changes=0)

    def scenario(self, label: str, *, changes: int, quiet: bool = False) -> dict[str, Any]:
        self.sandbox.clear_calls()
        load = os.getloadavg()[0]
        before = databases.last_run_id(self.dsn)
        log = self.dir / f"{len(self.rows) + 1:02d}-{_slug(label)}.log"
        result = run_sync(self.opts.syncd, self.config, log)
        if result.exit != 0:
            print(f"  sync exited {result.exit}; its output ends:\n{tail(log)}", file=sys.stderr)
        row = self._row(label, changes, result, log, after=before)
        row["loadavg_1m"] = round(load, 2)
        self.rows.append(row)
        if not quiet or result.exit != 0:
            self._show(row)
        if result.exit != 0:
            raise RunFailed(f"{label} exited {result.exit} (status {row['status']}); see {log}")
        return row

    def _row(
        self, label: str, changes: int, result: SyncRun, log: Path, *, after: int
    ) -> dict[str, Any]:
        calls = self.sandbox.calls()
        imports = [c for c in calls if c["method"] == "importContacts"]
        run = databases.run_row(self.dsn, result.finished.get("run_id"), after)
        timings = {k: float(v) for k, v in (run.get("timings") or {}).items()}
        counts = {k: result.finished.get(k, run.get(k)) for k in EFFECTS}
        return {
            "shape": self.shape.name,
            "n": self.n,
            "scenario": label,
            "exit": result.exit,
            "status": result.finished.get("status", run.get("status")),
            "run_id": result.finished.get("run_id", run.get("id")),
            "wall_s": round(result.seconds, 3),
            "digest_written": int(result.digest.get("settled", 0))
            + int(result.digest.get("touched", 0)),
            "narrowed": result.narrowed,
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "timed_s": round(sum(timings.values()), 3),
            "peak_rss_kib": result.peak_rss_kib,
            "rss_source": result.rss_source,
            "import_calls": len(imports),
            "import_rows": sum(c.get("rows") or 0 for c in imports),
            "api_calls": run.get("api_calls"),
            "sandbox_calls": len(calls),
            "export_fields": _field_names(calls),
            "api_errors": result.api_errors,
            "limit_errors": result.limit_errors if result.finished else None,
            "changes": changes,
            "bound": math.ceil(changes / BATCH),
            "counts": counts,
            "planned": run.get("planned") or {},
            "log": str(log.relative_to(ROOT)),
        }

    def _show(self, row: dict[str, Any]) -> None:
        phases = " ".join(f"{k}={v:.2f}" for k, v in row["timings"].items())
        print(
            f"  {row['scenario']:<16} exit {row['exit']}  wall {row['wall_s']:7.2f} s"
            f"  rss {row['peak_rss_kib'] / 1024:6.1f} MiB  importContacts"
            f" {row['import_calls']}/{row['bound']}  limit errors {row['limit_errors']}"
            f"  [{phases}]",
            flush=True,
        )

    def _floor(self, list_id: int) -> dict[str, Any]:
        """The floor on the data the no-change run just saw: the same export, as a file."""
        fields = next((r["export_fields"] for r in reversed(self.rows) if r["export_fields"]), None)
        if not fields:
            raise RuntimeError("no async/exportContacts call of syncd's in the sandbox's log")
        export = self.dir / "export.csv"
        size = self.sandbox.export_csv(list_id, fields, export)
        with export.open("rb") as f:
            rows = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1
        fastest, all_of_them = floors.best(self.dsn, export, self.opts.floor_repeats)
        if fastest.matched != self.n:
            print(f"  floor join matched {fastest.matched:,} of {self.n:,} rows", file=sys.stderr)
        result = {
            "shape": self.shape.name,
            "n": self.n,
            "rows": rows,
            "csv_bytes": size,
            "fields": fields,
            "copy_s": round(fastest.copy_s, 4),
            "join_s": round(fastest.join_s, 4),
            "floor_s": round(fastest.seconds, 4),
            "psql_s": round(fastest.psql_s, 4),
            "matched": fastest.matched,
            "repeats": [round(f.seconds, 4) for f in all_of_them],
        }
        print(
            f"  floor            \\copy {fastest.copy_s:.3f} s + hash join {fastest.join_s:.3f} s"
            f" = {fastest.seconds:.3f} s  ({rows:,} rows, {size / 1e6:.1f} MB)",
            flush=True,
        )
        return result


def _slug(label: str) -> str:
    return label.replace(" ", "-").replace("%", "pct")


def _field_names(calls: list[dict[str, Any]]) -> list[str]:
    """The field_names of the async/exportContacts call among `calls` (the sandbox's log)."""
    for call in calls:
        if call["method"] == "async/exportContacts":
            names = call["params"].get("field_names")
            if isinstance(names, dict):
                names = list(names.values())
            if isinstance(names, str):
                names = names.split(",")
            return [str(name).strip() for name in names or []]
    return []


def _list(text: str) -> list[str]:
    return [part for part in text.replace(" ", ",").split(",") if part]


def parse_args(argv: list[str] | None = None) -> tuple[list[int], list[str], Options, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100000,1000000"], help="N, comma-separated")
    parser.add_argument("--shapes", default="narrow,wide", help=f"of {', '.join(SHAPES)}")
    parser.add_argument("--syncd", type=Path, default=ROOT / ".venv" / "bin" / "syncd")
    parser.add_argument("--export-delay", type=float, default=1.0, help="sandbox, seconds")
    parser.add_argument("--floor-repeats", type=int, default=3, help="the fastest counts")
    parser.add_argument(
        "--repeats", type=int, default=3, help="no-change and 1%% runs each; the fastest counts"
    )
    parser.add_argument(
        "--skip-first-sync",
        action="store_true",
        help="start from the settled state an earlier run saved (bench/out/snapshots)",
    )
    parser.add_argument("--out", type=Path, default=None, help="result file (JSON)")
    args = parser.parse_args(argv)
    sizes = [int(part) for item in args.sizes for part in _list(item)]
    shapes = _list(args.shapes)
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes or not sizes or min(sizes) < 1000:
        parser.error(f"shapes of {', '.join(SHAPES)}; sizes >= 1000 (got {unknown or sizes})")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or OUT / f"reconcile-{stamp}.json"
    syncd = args.syncd.absolute()
    package, code = code_fingerprint(syncd)
    opts = Options(
        syncd=syncd,
        package=package,
        code=code,
        export_delay=args.export_delay,
        floor_repeats=args.floor_repeats,
        repeats=max(1, args.repeats),
        skip_first_sync=args.skip_first_sync,
    )
    return sizes, shapes, opts, out


def _meta(opts: Options, sizes: list[int], shapes: list[str]) -> dict[str, Any]:
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": sizes,
        "shapes": shapes,
        "syncd": str(opts.syncd),
        "syncd_package": opts.package,
        "syncd_code": opts.code,
        **machine_facts(opts.syncd, databases.ADMIN_DSN),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "export_delay": opts.export_delay,
        "repeats": opts.repeats,
        "skip_first_sync": opts.skip_first_sync,
    }


def _warn_if_busy() -> None:
    """Other work on the machine skews every figure (2 cores: one for syncd, one for PostgreSQL
    and the sandbox); say so up front. Each run records the load average it started under."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > BUSY_LOAD * cpus:
        print(
            f"warning: load average {load:.1f} on {cpus} CPUs: the machine is busy and the"
            " figures will be skewed",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    sizes, shapes, opts, out = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    _warn_if_busy()
    meta = _meta(opts, sizes, shapes)
    scenarios: list[dict[str, Any]] = []
    measured: list[dict[str, Any]] = []
    for n in sizes:
        for name in shapes:
            print(f"{name} shape, N = {n:,}", flush=True)
            rows, floor = Bench(SHAPES[name], n, opts).run()
            scenarios += rows
            if floor is not None:
                measured.append(floor)
    checks = report.targets(scenarios, measured)
    result = {"meta": meta, "scenarios": scenarios, "floors": measured, "targets": checks}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(report.markdown(scenarios, measured, checks))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
