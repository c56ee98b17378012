"""Sending the plan through importContacts: batches streamed from the plan table per action, at
most `max_in_flight` calls at once. Each batch's intent is committed to the ledger before it is
sent and its answer recorded in one transaction right after; a whole-call refusal is bisected so
one bad row cannot sink 499 good ones — unless the refusal is the call's, not a row's (every
part of the batch refused alike), which fails the run without counting anyone as rejected.

Owns the I/O of pushing; what a row carries is batches.py, what to push is the plan (SQL).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from syncd.api import ImportResult, SelzyClient
from syncd.config import JobConfig
from syncd.db import Accepted, Database, PlanRow, Rejected
from syncd.errors import ApiError, AuthError, CallRefused, SelzyError, SyncdError
from syncd.reconcile.actions import ACCEPTED_COUNT, PushAction
from syncd.reconcile.batches import build_row, check_batch, field_names

log = structlog.get_logger(__name__)


class BatchSource(Protocol):
    """Where the rows to push come from: a run's plan (syncd.db.RunSession), or the few rows a
    fast opt-out pass decided (syncd.reconcile.optouts)."""

    async def plan_batch(self, action: str, after_seq: int, limit: int) -> list[PlanRow]:
        """The next `limit` rows of `action` after `after_seq`, in seq order (empty: done)."""
        ...


def split_result(
    rows: Sequence[PlanRow], result: ImportResult
) -> tuple[list[Accepted], list[Rejected]]:
    """Every row with a `log` entry is rejected (Selzy documents no warning/error split); the
    rest were accepted. Pure."""
    problems: dict[int, tuple[str, str]] = {}
    for entry in result.log:
        problems.setdefault(entry.index, (entry.code, entry.message))
    accepted: list[Accepted] = []
    rejected: list[Rejected] = []
    for index, row in enumerate(rows):
        if index in problems:
            code, message = problems[index]
            rejected.append(Rejected(row.key, row.fingerprint, code, message))
        else:
            accepted.append(Accepted(row.key, row.fingerprint))
    return accepted, rejected


def is_row_refusal(exc: Exception) -> bool:
    """A whole-call error that may be caused by one of the rows (worth bisecting): Selzy's
    non-retryable errors except authentication problems."""
    return isinstance(exc, SelzyError) and not exc.retryable and not isinstance(exc, AuthError)


def same_refusal(a: SelzyError, b: SelzyError) -> bool:
    """Two refusals that read alike: the same code and the same message. A row's refusal names
    the row ("Contacts a@x and +7... already exist ..."); the call's (an unknown field) does not,
    so disjoint parts of a batch refused alike point at the call, not at a row."""
    return a.code == b.code and str(a) == str(b)


# A batch whose parts are refused alike this many halvings deep is refused as a call: 1 + 2 + 4
# calls at most before the run fails, instead of two calls per row down to single rows.
CALL_REFUSAL_DEPTH = 2


@dataclass
class PushTally:
    counts: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    batches: int = 0

    def add(self, name: str, value: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


class Pusher:
    """Pushes the plan's batches of one run. `run()` returns False when `stop` cut it short."""

    def __init__(
        self,
        *,
        session: BatchSource,
        database: Database,
        client: SelzyClient,
        job: JobConfig,
        run_id: int,
        profile: Sequence[str],
        stop: asyncio.Event | None,
    ) -> None:
        self._session = session
        self._database = database
        self._client = client
        self._job = job
        self._run_id = run_id
        self._profile = tuple(profile)
        self._stop = stop
        self.tally = PushTally()
        self._numbered = 0  # batches started, numbering them for the history

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def run(self, actions: Sequence[PushAction]) -> bool:
        slots = asyncio.Semaphore(max(1, self._job.max_in_flight))
        batch_size = max(1, min(self._job.batch_size, 500))
        in_flight: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            slots.release()
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        try:
            for action in actions:
                after = 0
                while not failures and not self._stopping():
                    await slots.acquire()
                    if failures or self._stopping():
                        slots.release()
                        break
                    rows = await self._session.plan_batch(action, after, batch_size)
                    if not rows:
                        slots.release()
                        break
                    after = rows[-1].seq
                    task = asyncio.create_task(
                        self._batch(action, rows), name=f"push-{action}-{after}"
                    )
                    in_flight.add(task)
                    task.add_done_callback(finished)
        finally:
            # Batches already sent are always awaited and recorded, whatever happens here.
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
        if failures:
            raise failures[0]
        return not self._stopping()

    async def _batch(self, action: PushAction, rows: Sequence[PlanRow]) -> None:
        names = field_names(action, match=self._job.match, profile=self._profile)
        keys = [row.key for row in rows]
        self._numbered += 1
        number = self._numbered
        await self._database.record_intent(
            job=self._job.name,
            run_id=self._run_id,
            action=action,
            keys=keys,
            fingerprints=[row.fingerprint for row in rows],
        )
        try:
            accepted, rejected = await self._send(action, names, rows)
        except ApiError as exc:
            refused = isinstance(exc, SelzyError) and (
                isinstance(exc, CallRefused) or not exc.retryable
            )
            if refused:
                # Selzy answered with a refusal: nothing of the call was applied. (A call whose
                # answer was lost keeps its intent: it may have been applied.)
                await self._database.clear_intent(job=self._job.name, keys=keys)
            with contextlib.suppress(SyncdError):  # the history must not hide the run's error
                await self._database.record_unanswered(
                    job=self._job.name,
                    run_id=self._run_id,
                    action=action,
                    keys=keys,
                    outcome="refused" if refused else "no_answer",
                    code=getattr(exc, "code", None) or type(exc).__name__,
                    message="refused by Selzy"
                    if refused
                    else "no answer: it may have been applied",
                    batch=number,
                )
            raise
        await self._database.record_batch(
            job=self._job.name,
            run_id=self._run_id,
            action=action,
            channel=self._job.match,
            accepted=accepted,
            rejected=rejected,
            quarantine_after=self._job.quarantine_after,
            batch=number,
        )
        self.tally.batches += 1
        self.tally.add(ACCEPTED_COUNT[action], len(accepted))
        self.tally.add("rejected", len(rejected))
        log.info(
            "batch_pushed",
            action=action,
            rows=len(rows),
            accepted=len(accepted),
            rejected=len(rejected),
            first_seq=rows[0].seq,
        )

    async def _call(
        self, action: PushAction, names: Sequence[str], rows: Sequence[PlanRow]
    ) -> ImportResult | SelzyError:
        """One importContacts call: its result, or the refusal a row may have caused."""
        data = [
            build_row(action, key=row.key, vals=row.vals, list_id=self._job.list_id) for row in rows
        ]
        check_batch(action, names, data, match=self._job.match, list_id=self._job.list_id)
        self.tally.calls += 1
        try:
            return await self._client.import_contacts(names, data)
        except SelzyError as exc:
            if not is_row_refusal(exc):
                raise
            return exc

    async def _send(
        self, action: PushAction, names: Sequence[str], rows: Sequence[PlanRow]
    ) -> tuple[list[Accepted], list[Rejected]]:
        answer = await self._call(action, names, rows)
        if isinstance(answer, SelzyError):
            return await self._refused(action, names, rows, answer, depth=0)
        return split_result(rows, answer)

    async def _refused(
        self,
        action: PushAction,
        names: Sequence[str],
        rows: Sequence[PlanRow],
        refusal: SelzyError,
        *,
        depth: int,
    ) -> tuple[list[Accepted], list[Rejected]]:
        """`rows` were refused as a whole: bisect, so that the rows that caused it are found.
        When both halves are refused exactly like their parent, CALL_REFUSAL_DEPTH halvings
        deep, no row caused it: CallRefused (a single bad row leaves its sibling half accepted,
        and a row's refusal names the row)."""
        if len(rows) == 1:
            row = rows[0]
            log.warning("row_refused", action=action, key=row.key, code=refusal.code)
            return [], [Rejected(row.key, row.fingerprint, refusal.code, str(refusal))]
        log.info("batch_bisected", action=action, rows=len(rows), code=refusal.code)
        middle = len(rows) // 2
        halves = (rows[:middle], rows[middle:])
        answers = [await self._call(action, names, half) for half in halves]
        alike = all(isinstance(a, SelzyError) and same_refusal(a, refusal) for a in answers)
        if alike and depth + 1 >= CALL_REFUSAL_DEPTH:
            raise CallRefused(
                # Selzy's message is left out: it may quote a row's address
                f"Selzy refused every part of a {action} batch alike (code {refusal.code}); "
                "that is the call's problem (fields, list, account), not a row's",
                code=refusal.code,
            ) from refusal
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for half, answer in zip(halves, answers, strict=True):
            if isinstance(answer, SelzyError):
                part = await self._refused(
                    action, names, half, answer, depth=depth + 1 if alike else 0
                )
            else:
                part = split_result(half, answer)
            accepted += part[0]
            rejected += part[1]
        return accepted, rejected
