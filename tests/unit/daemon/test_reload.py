"""What a reload changes: jobs added/removed/changed by name, sections that need a restart."""

from __future__ import annotations

from dataclasses import replace

from syncd.config import Config, JobConfig, Schedule, SelzyConfig, WebhookConfig
from syncd.daemon.reload import diff_jobs, restart_required


def job(name: str, **changes: object) -> JobConfig:
    base = JobConfig(
        name, 1, "public.contacts", "email", Schedule("every 1m", 60), {"email": "email"}
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_jobs_are_compared_by_name_and_every_setting() -> None:
    old = [job("a"), job("b"), job("c")]
    new = [job("a"), job("c", max_deletes=5), job("d")]
    changes = diff_jobs(old, new)
    assert changes.added == ("d",)
    assert changes.removed == ("b",)
    assert changes.changed == ("c",)
    assert not diff_jobs(old, list(old))


def test_a_field_mapping_change_is_a_change() -> None:
    changes = diff_jobs([job("a")], [job("a", fields={"email": "email", "Name": "first"})])
    assert changes.changed == ("a",)


def test_sections_built_at_start_need_a_restart() -> None:
    old = Config(jobs=(job("a"),))
    new = replace(old, selzy=SelzyConfig(timeout=5), webhook=WebhookConfig(public_url="http://x/y"))
    assert restart_required(old, new) == ["selzy", "webhook"]
    assert restart_required(old, replace(old, jobs=(job("b"),))) == []
