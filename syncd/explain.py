"""`syncd explain EMAIL|PHONE`: everything syncd knows of one contact, for every job whose list
or table holds it — the local rows (duplicates, and which one wins and why), Selzy's state as the
last export showed it, the ledger, and the history of every decision, push and Selzy-side
change, each decision with the rule that made it (decision.REASONS). Presentation only.

The key is canonicalised exactly as the sync does it (syncd.reconcile.keys).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from syncd.config import Config, JobConfig
from syncd.db.explain import ContactRecord, explain_contact
from syncd.reconcile.batches import profile_fields
from syncd.reconcile.decision import REASONS
from syncd.reconcile.keys import email_key, guess_channel, key_valid, phone_key


def canonical_keys(raw: str) -> dict[str, str]:
    """What the operator typed, as the sync would key it: {"email": ..., "phone": ...}."""
    channel = guess_channel(raw)
    return {
        "email": email_key(raw) if channel == "email" else "",
        "phone": phone_key(raw) if channel == "phone" else "",
    }


async def gather(cfg: Config, jobs: Sequence[JobConfig], raw: str) -> list[ContactRecord]:
    return await explain_contact(
        cfg.database, [(job, profile_fields(job)) for job in jobs], canonical_keys(raw)
    )


def _sentence(code: str | None) -> str:
    reason = REASONS.get(code or "")
    return reason.sentence if reason is not None else ""


def winner(record: ContactRecord, match: str) -> tuple[int | None, str]:
    """Index of the local row the sync uses, and why (the plan's rule for duplicates)."""
    rows = record.local_rows
    usable = [i for i, r in enumerate(rows) if key_valid(match, record.key)]  # type: ignore[arg-type]
    if not usable:
        return None, "no row has a usable key"
    if len(usable) == 1:
        return usable[0], "the only row with this key"
    pushed = (record.ledger or {}).get("pushed_fp")
    for i in usable:
        if rows[i]["fingerprint"] == pushed:
            return i, "the row whose values Selzy last accepted (a duplicate never flip-flops)"
    best = min(usable, key=lambda i: (rows[i]["fingerprint"], rows[i]["key_raw"]))
    return best, "the smallest fingerprint: a fixed choice until one of them is pushed"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def as_dict(record: ContactRecord, match: str) -> dict[str, Any]:
    index, why = winner(record, match)
    ledger = record.ledger or {}
    found: dict[str, Any] = _jsonable(
        {
            "job": record.job,
            "key": record.key,
            "decision": {
                "code": ledger.get("decision"),
                "sentence": _sentence(ledger.get("decision")),
                "run_id": ledger.get("decided_run"),
            },
            "local_rows": [{**row, "wins": i == index} for i, row in enumerate(record.local_rows)],
            "winner_reason": why if record.local_rows else None,
            "selzy": _selzy(ledger),
            "ledger": _ledger(ledger),
            "history": [{**h, "sentence": _sentence(h.get("reason"))} for h in record.history],
            "outcomes": record.outcomes,
        }
    )
    return found


def _selzy(ledger: dict[str, Any]) -> dict[str, Any] | None:
    if not ledger:
        return None
    fields = ("email", "email_status", "email_availability", "email_list_ids",
              "email_unsubscribed_list_ids", "phone", "phone_status", "phone_list_ids",
              "phone_unsubscribed_list_ids", "list_status", "remote_changed_at")  # fmt: skip
    return {"in_last_export": ledger.get("remote_seen", False)} | {f: ledger.get(f) for f in fields}


def _ledger(ledger: dict[str, Any]) -> dict[str, Any] | None:
    if not ledger:
        return None
    return {
        "pushed": None
        if ledger.get("pushed_fp") is None and ledger.get("pushed_action") is None
        else {
            "action": ledger.get("pushed_action"),
            "at": ledger.get("pushed_at"),
            "run_id": ledger.get("pushed_run"),
            "fingerprint": ledger.get("pushed_fp"),
        },
        "in_flight": None
        if ledger.get("intent_action") is None
        else {
            "action": ledger.get("intent_action"),
            "since": ledger.get("intent_at"),
            "run_id": ledger.get("intent_run"),
        },
        "suppressed": None
        if ledger.get("suppressed_reason") is None
        else {"reason": ledger.get("suppressed_reason"), "since": ledger.get("suppressed_at")},
        "rejections": ledger.get("rejections", 0),
        "last_code": ledger.get("last_code"),
        "last_message": ledger.get("last_message"),
        "quarantined_at": ledger.get("quarantined_at"),
        "local_fingerprint": ledger.get("local_fp"),
    }


def render(records: Sequence[ContactRecord], jobs: Sequence[JobConfig], *, as_json: bool) -> str:
    match = {job.name: job.match for job in jobs}
    dicts = [as_dict(r, match[r.job]) for r in records]
    if as_json:
        return json.dumps(dicts, indent=2)
    return "\n\n".join(_text(d) for d in dicts)


def _text(d: dict[str, Any]) -> str:
    lines = [f"{d['job']}: {d['key']}"]
    decision = d["decision"]
    if decision["code"]:
        lines.append(
            f"  decision (run {decision['run_id']}): {decision['code']} — {decision['sentence']}"
        )
    lines += _local_lines(d)
    lines += _selzy_lines(d["selzy"])
    lines += _ledger_lines(d["ledger"])
    if d["history"]:
        lines.append("  history:")
        lines += ["    " + _history_line(h) for h in d["history"]]
    return "\n".join(lines)


def _local_lines(d: dict[str, Any]) -> list[str]:
    lines = ["  local rows:" if d["local_rows"] else "  local rows: none"]
    for row in d["local_rows"]:
        mark = "*" if row["wins"] else " "
        columns = ", ".join(f"{k}={v!r}" for k, v in row["columns"].items())
        lines.append(f"   {mark} {columns}" + ("  [opted out]" if row["opt_out"] else ""))
    if len(d["local_rows"]) > 1:
        lines.append(f"    * wins: {d['winner_reason']}")
    return lines


def _selzy_lines(selzy: dict[str, Any] | None) -> list[str]:
    if selzy is None:
        return ["  Selzy: never seen in an export"]
    seen = "in the last export" if selzy["in_last_export"] else "not in the last export"
    lines = [
        f"  Selzy ({seen}): list_status {selzy['list_status']}; email {selzy['email'] or '-'}"
        f" {selzy['email_status'] or '-'}/{selzy['email_availability'] or '-'}"
        f"; phone {selzy['phone'] or '-'} {selzy['phone_status'] or '-'}"
    ]
    unsub = [x for x in (selzy["email_unsubscribed_list_ids"],
                         selzy["phone_unsubscribed_list_ids"]) if x]  # fmt: skip
    if unsub:
        lines.append(f"    unsubscribed from lists: {', '.join(unsub)}")
    return lines


def _ledger_lines(ledger: dict[str, Any] | None) -> list[str]:
    if ledger is None:
        return []
    lines = []
    if ledger["pushed"]:
        p = ledger["pushed"]
        lines.append(f"  last pushed: {p['action']} at {p['at']} (run {p['run_id']})")
    if ledger["in_flight"]:
        f = ledger["in_flight"]
        lines.append(
            f"  in flight: {f['action']} since {f['since']} (run {f['run_id']}):"
            " it may or may not have been applied"
        )
    if ledger["suppressed"]:
        s = ledger["suppressed"]
        lines.append(f"  suppressed: {s['reason']} (since {s['since']})")
    if ledger["rejections"]:
        lines.append(
            f"  rejected {ledger['rejections']} run(s): {ledger['last_code']}"
            f" {ledger['last_message'] or ''}".rstrip()
        )
    if ledger["quarantined_at"]:
        lines.append(f"  quarantined since {ledger['quarantined_at']}")
    return lines


def _history_line(h: dict[str, Any]) -> str:
    head = f"{h['at']} run {h['run_id']} {h['kind']}"
    if h["kind"] == "decision":
        return f"{head} {h['reason']} — {h['sentence']}"
    if h["kind"] == "push":
        answer = h["outcome"] + (f" {h['code']}: {h['message']}" if h["code"] else "")
        return f"{head} {h['action']} (batch {h['batch']}): {answer}"
    return f"{head}: {h['message'] or h['outcome'] or ''}"
