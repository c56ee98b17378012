"""A stored plan as a JSON-lines file for review (`syncd plan --out FILE`; gzip when FILE ends in
`.gz`): one header line with the plan's id, job, time, config hash, counts and guard verdict,
then one line per contact (seq, key, action, reason, values), streamed from PostgreSQL a page at
a time — memory stays flat at a million contacts. Written to a temporary file beside FILE and
renamed, so a reviewer never reads half a plan.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from pathlib import Path
from typing import IO

from syncd.config import DatabaseConfig
from syncd.db.plans import StoredPlan, plan_rows


def _open(path: Path, *, compressed: bool) -> IO[str]:
    if compressed:
        return gzip.open(path, "wt", encoding="utf-8")
    return path.open("w", encoding="utf-8")


async def write_plan(database: DatabaseConfig, plan: StoredPlan, path: Path) -> int:
    """Write `plan` to `path`; the number of contact lines."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    lines = 0
    try:
        with _open(temporary, compressed=path.name.endswith(".gz")) as out:
            header = {
                "plan": plan.id,
                "job": plan.job,
                "created_at": plan.created_at.isoformat(),
                "config_hash": plan.config_hash,
                "allow_mass_delete": plan.allow_mass_delete,
                "blocked_reason": plan.blocked_reason,
                "counts": dict(plan.counts),
            }
            out.write(json.dumps(header, ensure_ascii=False) + "\n")
            async for row in plan_rows(database, plan.id):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                lines += 1
        temporary.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return lines
