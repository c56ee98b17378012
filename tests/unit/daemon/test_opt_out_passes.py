"""The daemon's side of the fast opt-out passes, without I/O: a pass never runs beside a run of
the job in this process (it skips; a run waits for the pass's gate), and failed passes back off
up to RETRY_MAX."""

from __future__ import annotations

import asyncio
from typing import Any

from syncd.config import JobConfig, Schedule
from syncd.daemon.jobs import InFlight, JobRunner
from syncd.daemon.optouts import RETRY_MAX, OptOutPasses, retry_delay
from syncd.errors import SyncdError
from syncd.reconcile import RunServices
from syncd.web.metrics import RunStats


def job(name: str = "news") -> JobConfig:
    return JobConfig(
        name,
        1,
        "t",
        "email",
        Schedule("every 1m", 60),
        {"email": "email"},
        opt_out_column="opted_out",
        opt_out_latency=10.0,
    )


def no_services() -> RunServices:
    raise SyncdError("no services in this test")


def passes(runner: JobRunner) -> OptOutPasses:
    def spawn(name: str, coro: Any, *, may_end: bool = False) -> asyncio.Task[Any]:
        return asyncio.create_task(coro, name=name)

    return OptOutPasses(runner=runner, services=no_services, stop=asyncio.Event(), spawn=spawn)


async def test_a_pass_skips_while_this_process_runs_the_job() -> None:
    runner = JobRunner(no_services, asyncio.Event(), RunStats())
    runner.jobs = {"news": job()}
    task = asyncio.current_task()
    assert task is not None
    runner.in_flight["news"] = InFlight(task, "schedule", 0.0, 1.0)  # type: ignore[arg-type]
    outcome = await passes(runner).pass_once(job())
    assert (outcome.status, outcome.reason) == ("skipped", "running")


async def test_a_pass_skips_while_the_gate_is_held() -> None:
    runner = JobRunner(no_services, asyncio.Event(), RunStats())
    async with runner.gate("news"):
        outcome = await passes(runner).pass_once(job())
    assert outcome.status == "skipped"


async def test_a_run_waits_for_the_gate_a_pass_holds() -> None:
    runner = JobRunner(no_services, asyncio.Event(), RunStats())
    runner.jobs = {"news": job()}
    gate = runner.gate("news")
    await gate.acquire()
    run = asyncio.create_task(runner.run("news", "schedule"))
    for _ in range(10):
        await asyncio.sleep(0)
    assert "news" in runner.in_flight
    assert runner.finished == 0
    gate.release()
    await asyncio.wait_for(run, 5)
    assert runner.finished == 1
    assert "news" not in runner.in_flight


def test_failed_passes_back_off_up_to_the_cap() -> None:
    assert retry_delay(5.0, 1) == 10.0
    assert retry_delay(5.0, 2) == 20.0
    assert retry_delay(5.0, 10) == RETRY_MAX
    assert retry_delay(5.0, 10_000) == RETRY_MAX
    assert retry_delay(600.0, 3) == 600.0  # never sooner than the interval itself
