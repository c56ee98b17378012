"""What a run checks on Selzy's side before it pushes anything: the job's list and every mapped
user field exist. A batch naming a field Selzy does not have is refused as a whole; without this
check every contact of it would look rejected (and end up quarantined) for a problem no row has.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncd.api import SelzyClient
from syncd.config import SYSTEM_FIELDS, JobConfig
from syncd.errors import ConfigError


async def check_selzy_side(client: SelzyClient, job: JobConfig, profile: Sequence[str]) -> None:
    """ConfigError naming each missing list or field by its key (two calls: getLists,
    getFields)."""
    problems: list[str] = []
    lists = {item.id for item in await client.get_lists()}
    if job.list_id not in lists:
        problems.append(f"jobs[{job.name}].list_id: Selzy has no list {job.list_id}")
    user_fields = [name for name in profile if name not in SYSTEM_FIELDS]
    if user_fields:
        known = {item.name for item in await client.get_fields()}
        problems.extend(
            f"jobs[{job.name}].fields.{name}: Selzy has no user field {name!r}; create it "
            "there (type string) or remove the mapping — nothing was pushed"
            for name in user_fields
            if name not in known
        )
    if problems:
        raise ConfigError(problems)
