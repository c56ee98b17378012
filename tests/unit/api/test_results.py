"""Result JSON -> typed values; malformed shapes raise ProtocolError naming the field."""

from __future__ import annotations

import pytest

from syncd.api import results
from syncd.api.types import (
    ContactInfo,
    ContactList,
    FieldInfo,
    ImportLogEntry,
    ImportResult,
    ListInfo,
    TaskResult,
)
from syncd.errors import ProtocolError

IMPORT_OK = {
    "total": 3,
    "inserted": 1,
    "updated": 1,
    "deleted": 0,
    "new_emails": 1,
    "invalid": 1,
    "log": [{"index": 2, "code": "invalid_email", "message": "bad address"}],
}


def test_import_result_with_log() -> None:
    assert results.parse_import(IMPORT_OK, rows=3) == ImportResult(
        total=3,
        inserted=1,
        updated=1,
        deleted=0,
        new_emails=1,
        invalid=1,
        log=(ImportLogEntry(index=2, code="invalid_email", message="bad address"),),
    )


def test_import_result_without_log_has_empty_log() -> None:
    document = {k: v for k, v in IMPORT_OK.items() if k != "log"}
    assert results.parse_import(document, rows=3).log == ()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total": "3"}, "total"),
        ({"inserted": None}, "inserted"),
        ({"updated": True}, "updated"),
        ({"invalid": -1}, "invalid"),
        ({"log": {"index": 0}}, "log"),
        ({"log": [{"index": "2", "code": "c", "message": "m"}]}, "index"),
        ({"log": [{"index": 1, "code": 5, "message": "m"}]}, "code"),
        ({"log": [{"index": 1, "code": "c"}]}, "message"),
        ({"log": ["oops"]}, "log"),
    ],
)
def test_malformed_import_result_is_a_protocol_error(change: dict[str, object], field: str) -> None:
    with pytest.raises(ProtocolError, match=field):
        results.parse_import(IMPORT_OK | change, rows=3)


def test_import_log_index_outside_the_rows_sent_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="outside the 2 rows"):
        results.parse_import(IMPORT_OK, rows=2)


def test_lists_and_fields_accept_numeric_string_ids() -> None:
    assert results.parse_lists([{"id": 1, "title": "A"}, {"id": "22", "title": "B", "x": 1}]) == [
        ListInfo(1, "A"),
        ListInfo(22, "B"),
    ]
    assert results.parse_fields([{"id": 3, "name": "Name", "type": "string"}]) == [
        FieldInfo(3, "Name", "string")
    ]


@pytest.mark.parametrize(
    "document",
    [{"lists": []}, [{"id": "x", "title": "A"}], [{"id": 1}], [{"id": 1.5, "title": "A"}], ["A"]],
)
def test_malformed_lists_are_protocol_errors(document: object) -> None:
    with pytest.raises(ProtocolError, match="getLists"):
        results.parse_lists(document)


def test_created_id() -> None:
    assert results.parse_created_id({"id": 12345}, method="createList") == 12345
    with pytest.raises(ProtocolError, match="createField"):
        results.parse_created_id({}, method="createField")


def test_contact_with_lists_and_fields() -> None:
    document = {
        "email": {"email": "a@x.org", "status": "active", "availability": "available", "rating": 1},
        "lists": [{"id": 5, "status": "unsubscribed", "added_at": "2023-01-02 03:04:05"}],
        "fields": {"Name": "Ann", "Age": 3, "City": None},
    }
    assert results.parse_contact(document) == ContactInfo(
        email="a@x.org",
        status="active",
        availability="available",
        lists=(ContactList(5, "unsubscribed"),),
        fields={"Name": "Ann", "Age": "3", "City": ""},
    )


def test_contact_with_php_empty_fields_array() -> None:
    document = {"email": {"email": "a@x.org", "status": "new", "availability": "available"}}
    assert results.parse_contact(document | {"fields": []}).fields == {}
    assert results.parse_contact(document).lists == ()


def test_contact_without_email_object_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match=r"result\.email"):
        results.parse_contact({"email": "a@x.org"})


def test_task_results() -> None:
    created = results.parse_task(
        {"task_uuid": "u-1", "status": "new"}, method="async/exportContacts"
    )
    assert created == TaskResult("u-1", "new", None, None)
    assert not created.completed
    done = results.parse_task(
        {
            "task_uuid": "u-1",
            "status": "completed",
            "task_type": "exportContacts",
            "file_to_download": "https://h/f.csv",
        },
        method="async/getTaskResult",
    )
    assert done == TaskResult("u-1", "completed", "exportContacts", "https://h/f.csv")
    assert done.completed


@pytest.mark.parametrize(
    "document",
    [
        {"status": "new"},
        {"task_uuid": "u", "status": 1},
        {"task_uuid": "u", "status": "new", "file_to_download": 5},
        "u",
    ],
)
def test_malformed_task_results_are_protocol_errors(document: object) -> None:
    with pytest.raises(ProtocolError, match="async/getTaskResult"):
        results.parse_task(document, method="async/getTaskResult")
