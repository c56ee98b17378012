"""Typed results of the Selzy client: frozen values only. Parsing them from JSON lives in
results.py; nothing here does I/O or validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ListInfo:
    """One contact list (getLists)."""

    id: int
    title: str


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One user-defined field (getFields); `name` is what import/export `field_names` use."""

    id: int
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class ContactList:
    """A list the contact's email is in (getContact `lists[]`); `status` is the per-list state."""

    id: int
    status: str


@dataclass(frozen=True, slots=True)
class ContactInfo:
    """One contact as getContact reports it; `fields` maps user field name -> value (None -> "")."""

    email: str
    status: str
    availability: str
    lists: tuple[ContactList, ...]
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class HookInfo:
    """One event webhook handler (setHook / listHooks; selzy-api.md §11.1). `hook_url` is its
    identity; `status` is `active`, `stopped` (Selzy gave up delivering), or anything new;
    `events` maps event name -> `*` or a list filter, as far as the answer shows it."""

    hook_url: str
    status: str
    events: Mapping[str, str]

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class ImportLogEntry:
    """A per-row problem reported by importContacts; `index` is 0-based into the submitted rows."""

    index: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The importContacts result, counts as Selzy reports them."""

    total: int
    inserted: int
    updated: int
    deleted: int
    new_emails: int
    invalid: int
    log: tuple[ImportLogEntry, ...]


@dataclass(frozen=True, slots=True)
class TaskResult:
    """An async task (async/exportContacts, async/getTaskResult).

    `status` is Selzy's (`new`, `processing`, `completed`, or anything new it invents);
    `task_type` is None when Selzy leaves it out (the exportContacts answer does);
    `file_to_download` is set once the export is `completed`.
    """

    task_uuid: str
    status: str
    task_type: str | None
    file_to_download: str | None

    @property
    def completed(self) -> bool:
        return self.status == "completed"
