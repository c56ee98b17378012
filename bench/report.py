"""What the reconciliation benchmark's figures are judged against (the targets), and the markdown
tables that bench/README.md records. Pure functions over the result rows; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

MIB = 1024 * 1024
RSS_LIMIT_MIB = 150.0
RSS_GROWTH_LIMIT = 1.3  # peak RSS at the largest N / at the smallest N
NO_CHANGE_FACTOR = 2.0  # no-change run <= 2 x floor
CHANGE_FACTOR = 2.0  # 1%-change run <= 2 x floor + its API (push) time
# The time targets judge a run's own time: its wall time less the `export` phase, the wait for
# Selzy (here the sandbox) to prepare the export file, which the floor starts from. Process
# start-up, the local half's time past the file being ready (`local_wait`), the download + COPY,
# the plan and the pushes all count. Wall ratios are shown too.
PHASES = (  # timings keys, in run order
    "export",
    "local",
    "local_wait",
    "load",
    "plan",
    "ledger",
    "check",
    "push",
    "import",
    "writeback",
    "digest",
    "maintain",
)

NO_CHANGE = "no-change run"
ONE_PERCENT = "1% change run"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _target(
    shape: str, n: int | str, name: str, measured: str, limit: str, ok: bool
) -> dict[str, Any]:
    return {
        "shape": shape,
        "n": n,
        "target": name,
        "measured": measured,
        "limit": limit,
        "result": _verdict(ok),
    }


def own_s(row: dict[str, Any]) -> float:
    """Wall time less the wait for the export file (see the targets' comment above)."""
    return float(row["wall_s"]) - float(row["timings"].get("export", 0.0))


def _by(rows: Iterable[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["scenario"] == scenario]


def _beyond_push(row: dict[str, Any]) -> float:
    """Own time less the API time of the run's calls (its push phase)."""
    return own_s(row) - float(row["timings"].get("push", 0.0))


def _best(
    rows: list[dict[str, Any]], spent: Callable[[dict[str, Any]], float], what: str
) -> tuple[dict[str, Any], str]:
    """The repeat a time target judges — the fastest by `spent`: noise only ever adds time, so
    the fastest is the best estimate of the run's cost, as the floor's fastest is of the
    floor's; a failed repeat is judged instead — and the note on it for the table (`what`
    names the median's measure)."""
    failed = [row for row in rows if row["exit"] != 0]
    if failed:
        return failed[0], " (a repeat failed)"
    fastest = min(rows, key=spent)
    if len(rows) == 1:
        return fastest, ""
    ordered = sorted(spent(row) for row in rows)
    return fastest, f" (fastest of {len(rows)}; median {ordered[len(ordered) // 2]:.2f} s {what})"


def targets(
    scenarios: Sequence[dict[str, Any]], floors: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every target, per shape and N, with PASS/FAIL (the time targets need that N's floor)."""
    floor_of = {(f["shape"], f["n"]): f["floor_s"] for f in floors}
    out: list[dict[str, Any]] = []
    for shape, n in dict.fromkeys((r["shape"], r["n"]) for r in scenarios):
        mine = [r for r in scenarios if (r["shape"], r["n"]) == (shape, n)]
        floor = floor_of.get((shape, n))
        if floor is not None:
            out += _time_targets(shape, n, mine, floor)
        out += _run_targets(shape, n, mine)
    out += _rss_growth(scenarios)
    return out


def _time_targets(
    shape: str, n: int, mine: list[dict[str, Any]], floor: float
) -> list[dict[str, Any]]:
    out = []
    if stills := _by(mine, NO_CHANGE):
        still, how = _best(stills, own_s, "own")
        limit = NO_CHANGE_FACTOR * floor
        out.append(
            _target(
                shape,
                n,
                "no-change run: own time ≤ 2x floor",
                f"{own_s(still):.2f} s{how}",
                f"{limit:.2f} s",
                still["exit"] == 0 and own_s(still) <= limit,
            )
        )
    if changes := _by(mine, ONE_PERCENT):
        # own time <= 2 x floor + push  <=>  own time less push <= 2 x floor
        change, how = _best(changes, _beyond_push, "beyond the push")
        limit = CHANGE_FACTOR * floor + change["timings"].get("push", 0.0)
        out.append(
            _target(
                shape,
                n,
                "1% change run: own time ≤ 2x floor + its API time",
                f"{own_s(change):.2f} s{how}",
                f"{limit:.2f} s",
                change["exit"] == 0 and own_s(change) <= limit,
            )
        )
    return out


def _run_targets(shape: str, n: int, mine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    failed = [r for r in mine if r["exit"] != 0]
    wrong = [r for r in mine if r["import_calls"] != r["bound"]]
    peak = max((r["peak_rss_kib"] for r in mine), default=0) * 1024 / MIB
    errors = [r["limit_errors"] for r in mine]
    return [
        _target(
            shape,
            n,
            "every run exits 0",
            ", ".join(f"{r['scenario']}: {r['exit']}" for r in failed) or f"{len(mine)} runs",
            "0",
            not failed,
        ),
        _target(
            shape,
            n,
            "importContacts calls = ceil(changes/500)",
            ", ".join(f"{r['scenario']}: {r['import_calls']}" for r in wrong)
            or f"all {len(mine)} runs",
            ", ".join(f"{r['scenario']}: {r['bound']}" for r in wrong) or "=",
            not wrong,
        ),
        _target(
            shape,
            n,
            f"peak RSS ≤ {RSS_LIMIT_MIB:g} MiB",
            f"{peak:.1f} MiB",
            f"{RSS_LIMIT_MIB:g} MiB",
            0 < peak <= RSS_LIMIT_MIB,
        ),
        _target(
            shape,
            n,
            "zero limit errors",
            "unknown" if None in errors else str(sum(e or 0 for e in errors)),
            "0",
            None not in errors and not any(errors),
        ),
    ]


def _rss_growth(scenarios: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for shape in dict.fromkeys(r["shape"] for r in scenarios):
        peaks: dict[int, int] = {}
        for r in scenarios:
            if r["shape"] == shape:
                peaks[r["n"]] = max(peaks.get(r["n"], 0), r["peak_rss_kib"])
        if len(peaks) < 2 or not peaks[min(peaks)]:
            continue
        small, large = min(peaks), max(peaks)
        ratio = peaks[large] / peaks[small]
        out.append(
            _target(
                shape,
                f"{small:,} → {large:,}",
                f"RSS({large:,}) / RSS({small:,}) ≤ {RSS_GROWTH_LIMIT:g}",
                f"{ratio:.2f}",
                f"{RSS_GROWTH_LIMIT:g}",
                ratio <= RSS_GROWTH_LIMIT,
            )
        )
    return out


def _phases(scenarios: Sequence[dict[str, Any]]) -> list[str]:
    seen = dict.fromkeys(k for r in scenarios for k in r["timings"])
    return [p for p in PHASES if p in seen] + sorted(k for k in seen if k not in PHASES)


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _n(n: int | str) -> str:
    return f"{n:,}" if isinstance(n, int) else n


def markdown(
    scenarios: Sequence[dict[str, Any]],
    floors: Sequence[dict[str, Any]],
    checks: Sequence[dict[str, Any]],
) -> str:
    """The three tables of bench/README.md "Results": runs, floors, targets."""
    floor_of = {(f["shape"], f["n"]): f["floor_s"] for f in floors}
    phases = _phases(scenarios)
    head = ["shape", "N", "scenario", "exit", "wall s", *(f"{p} s" for p in phases)]
    head += ["own s", "own x floor", "own x (floor + push)", "wall x floor"]
    head += ["peak RSS MiB", "importContacts", "bound", "API calls (all)", "limit errors"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in scenarios:
        floor = floor_of.get((r["shape"], r["n"]))
        push = r["timings"].get("push", 0.0)
        cells = [r["shape"], _n(r["n"]), r["scenario"], str(r["exit"]), _num(r["wall_s"], 1)]
        cells += [_num(r["timings"].get(p)) for p in phases]
        cells.append(_num(own_s(r)))
        cells.append(_num(own_s(r) / floor, 1) if floor else "-")
        changed = floor and r["scenario"] == ONE_PERCENT
        cells.append(_num(own_s(r) / (floor + push), 1) if changed else "-")
        cells.append(_num(r["wall_s"] / floor, 1) if floor else "-")
        cells += [
            _num(r["peak_rss_kib"] * 1024 / MIB, 1),
            str(r["import_calls"]),
            str(r["bound"]),
            str(r["api_calls"]),
            "?" if r["limit_errors"] is None else str(r["limit_errors"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| shape | N | export rows | export MB | \\copy s | hash join s | floor s | psql s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in floors:
        lines.append(
            f"| {f['shape']} | {f['n']:,} | {f['rows']:,} | {f['csv_bytes'] / 1e6:.1f}"
            f" | {f['copy_s']:.3f} | {f['join_s']:.3f} | {f['floor_s']:.3f} | {f['psql_s']:.3f} |"
        )
    lines += ["", "| shape | N | target | measured | limit | result |", "|---|---|---|---|---|---|"]
    for c in checks:
        lines.append(
            f"| {c['shape']} | {_n(c['n'])} | {c['target']} | {c['measured']} | {c['limit']}"
            f" | {c['result']} |"
        )
    return "\n".join(lines)
