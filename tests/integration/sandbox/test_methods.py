"""Lists, fields and single-contact methods: success and error shapes (selzy-api.md §5, §6)."""

from __future__ import annotations

import pytest

from tests.fixtures.sandbox import SandboxHandle


async def test_lists_lifecycle(sandbox: SandboxHandle) -> None:
    created = await sandbox.call("createList", title="News")
    list_id = created["result"]["id"]
    assert (await sandbox.call("getLists"))["result"] == [{"id": list_id, "title": "News"}]
    assert await sandbox.call("updateList", list_id=list_id, title="Renamed") == {"result": {}}
    assert (await sandbox.call("getLists"))["result"] == [{"id": list_id, "title": "Renamed"}]
    assert await sandbox.call("deleteList", list_id=list_id) == {"result": {}}
    assert (await sandbox.call("getLists"))["result"] == []


async def test_duplicate_list_title_is_an_error(sandbox: SandboxHandle) -> None:
    await sandbox.call("createList", title="News")
    envelope = await sandbox.call("createList", title="News")
    assert envelope["code"] == "invalid_arg"
    assert "News" in envelope["error"]


@pytest.mark.parametrize("method", ["updateList", "deleteList"])
async def test_unknown_list_is_an_error(sandbox: SandboxHandle, method: str) -> None:
    assert (await sandbox.call(method, list_id=404))["code"] == "invalid_arg"


async def test_create_list_without_title_is_invalid_arg(sandbox: SandboxHandle) -> None:
    assert (await sandbox.call("createList"))["code"] == "invalid_arg"


async def test_fields_lifecycle(sandbox: SandboxHandle) -> None:
    created = await sandbox.call("createField", name="City", type="string")
    field_id = created["result"]["id"]
    [field] = (await sandbox.call("getFields"))["result"]
    assert field["id"] == field_id
    assert field["name"] == "City"
    assert field["type"] == "string"
    assert field["is_visible"] == 1
    assert field["view_pos"] == 1


@pytest.mark.parametrize(
    ("name", "type_"),
    [("City", "colour"), ("9lives", "string"), ("has space", "string"), ("email", "string")],
)
async def test_bad_fields_are_rejected(sandbox: SandboxHandle, name: str, type_: str) -> None:
    envelope = await sandbox.call("createField", name=name, type=type_)
    assert envelope["code"] == "invalid_arg"


async def test_duplicate_field_is_rejected(sandbox: SandboxHandle) -> None:
    await sandbox.call("createField", name="City", type="string")
    assert (await sandbox.call("createField", name="City", type="text"))["code"] == "invalid_arg"


async def test_get_contact_shape(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await sandbox.upsert_contacts(
        [{"email": "x@example.com", "email_status": "active", "email_list_ids": [a],
          "email_unsubscribed_list_ids": [b], "fields": {"Name": "Ann"}}]
    )  # fmt: skip
    envelope = await sandbox.call(
        "getContact", email="X@example.com", include_lists=1, include_fields=1, include_details=1
    )
    result = envelope["result"]
    assert set(result) == {"email", "lists", "fields"}
    email = result["email"]
    assert email["email"] == "x@example.com"
    assert email["status"] == "active"
    assert email["availability"] == "available"
    assert len(email["added_at"]) == 19
    assert email["last_read_datetime"] is None
    assert "rating" in email
    assert [(entry["id"], entry["status"]) for entry in result["lists"]] == [
        (a, "active"),
        (b, "unsubscribed"),
    ]
    assert result["fields"] == {"Name": "Ann"}


async def test_get_contact_without_includes_has_only_email(sandbox: SandboxHandle) -> None:
    await sandbox.upsert_contacts([{"email": "x@example.com"}])
    result = (await sandbox.call("getContact", email="x@example.com"))["result"]
    assert set(result) == {"email"}
    assert "rating" not in result["email"]


async def test_get_contact_not_found(sandbox: SandboxHandle) -> None:
    envelope = await sandbox.call("getContact", email="ghost@example.com")
    assert envelope == {
        "error": 'Contact "ghost@example.com" not found',
        "code": "unspecified",
        "result": "",
    }


@pytest.mark.parametrize(("optin", "status"), [("0", "invited"), ("3", "new"), ("4", "invited")])
async def test_subscribe_new_address_status_by_double_optin(
    sandbox: SandboxHandle, optin: str, status: str
) -> None:
    list_id = await sandbox.create_list("A")
    envelope = await sandbox.call(
        "subscribe", {"fields[email]": "x@example.com"}, list_ids=list_id, double_optin=optin
    )
    assert isinstance(envelope["result"]["person_id"], int)
    contact = await sandbox.contact("x@example.com")
    assert contact is not None
    assert contact["email_status"] == status
    assert contact["email_list_ids"] == [list_id]


async def test_subscribe_optin_4_keeps_an_active_address(sandbox: SandboxHandle) -> None:
    list_id = await sandbox.create_list("A")
    await sandbox.upsert_contacts([{"email": "x@example.com", "email_status": "active"}])
    await sandbox.call(
        "subscribe", {"fields[email]": "x@example.com"}, list_ids=list_id, double_optin=4
    )
    contact = await sandbox.contact("x@example.com")
    assert contact is not None
    assert contact["email_status"] == "active"


async def test_subscribe_phone_is_active_and_errors_are_typed(sandbox: SandboxHandle) -> None:
    list_id = await sandbox.create_list("A")
    await sandbox.call("subscribe", {"fields[phone]": "+15550000001"}, list_ids=list_id)
    [contact] = await sandbox.contacts()
    assert contact["phone_status"] == "active"
    assert contact["phone_list_ids"] == [list_id]
    no_address = await sandbox.call("subscribe", {"fields[Name]": "x"}, list_ids=list_id)
    assert no_address["code"] == "invalid_arg"
    bad_list = await sandbox.call("subscribe", {"fields[email]": "y@example.com"}, list_ids=999)
    assert bad_list["code"] == "invalid_arg"


async def test_subscribe_checks_user_field_values_against_their_type(
    sandbox: SandboxHandle,
) -> None:
    list_id = await sandbox.create_list("A")
    await sandbox.create_field("Age", "number")
    form = {"fields[email]": "x@example.com", "fields[Age]": "old"}
    envelope = await sandbox.call("subscribe", form, list_ids=list_id)
    assert envelope["code"] == "invalid_arg"
    assert "Age" in envelope["error"]
    assert await sandbox.contacts() == []
    form["fields[Age]"] = "41.5"
    assert "person_id" in (await sandbox.call("subscribe", form, list_ids=list_id))["result"]


async def test_exclude_removes_membership_without_mark(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await sandbox.upsert_contacts([{"email": "x@example.com", "email_list_ids": [a, b]}])
    envelope = await sandbox.call(
        "exclude", contact_type="email", contact="x@example.com", list_ids=str(a)
    )
    assert envelope == {"result": {}}
    contact = await sandbox.contact("x@example.com")
    assert contact is not None
    assert contact["email_list_ids"] == [b]
    assert contact["email_unsubscribed_list_ids"] == []


async def test_unsubscribe_marks_every_list_and_keeps_status(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await sandbox.upsert_contacts(
        [{"email": "x@example.com", "email_status": "active", "email_list_ids": [a, b]}]
    )
    envelope = await sandbox.call("unsubscribe", contact_type="email", contact="x@example.com")
    assert envelope == {"result": {}}
    contact = await sandbox.contact("x@example.com")
    assert contact is not None
    assert contact["email_list_ids"] == []
    assert contact["email_unsubscribed_list_ids"] == [a, b]
    assert contact["email_status"] == "active"


@pytest.mark.parametrize("method", ["exclude", "unsubscribe"])
async def test_exclude_and_unsubscribe_of_unknown_contact(
    sandbox: SandboxHandle, method: str
) -> None:
    a = await sandbox.create_list("A")
    envelope = await sandbox.call(method, contact_type="email", contact="x@example.com")
    assert envelope == {
        "error": 'Contact "x@example.com" not found',
        "code": "unspecified",
        "result": "",
    }
    await sandbox.upsert_contacts([{"email": "y@example.com"}])
    not_in_list = await sandbox.call(
        method, contact_type="email", contact="y@example.com", list_ids=a
    )
    assert not_in_list["code"] == "unspecified"


async def test_is_contact_in_lists(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await sandbox.upsert_contacts([{"email": "x@example.com", "email_list_ids": [a]}])
    lists = f"{a},{b}"
    yes = await sandbox.call(
        "isContactInLists", email="x@example.com", list_ids=lists, condition="or"
    )
    no = await sandbox.call(
        "isContactInLists", email="x@example.com", list_ids=lists, condition="and"
    )
    assert yes == {"result": True}
    assert no == {"result": False}
    bad = await sandbox.call(
        "isContactInLists", email="x@example.com", list_ids=lists, condition="x"
    )
    assert bad["code"] == "invalid_arg"


async def test_get_contact_count(sandbox: SandboxHandle) -> None:
    a = await sandbox.create_list("A")
    await sandbox.seed(list_id=a, count=5)
    await sandbox.upsert_contacts([{"phone": "+15550000001", "phone_list_ids": [a]}])
    envelope = await sandbox.call(
        "getContactCount", {"params[type]": "address", "params[search]": "user1"}, list_id=a
    )
    assert envelope["result"] == {
        "listId": a,
        "searchParams": {"type": "address", "search": "user1"},
        "count": 1,
    }
    phones = await sandbox.call("getContactCount", {"params[type]": "phone"}, list_id=a)
    assert phones["result"]["count"] == 1
    assert (await sandbox.call("getContactCount", list_id=a))["code"] == "invalid_arg"


async def test_get_total_contacts_count(sandbox: SandboxHandle) -> None:
    await sandbox.seed(list_id=1, count=7)
    assert await sandbox.call("getTotalContactsCount", login="me") == {"result": {"total": 7}}
    assert (await sandbox.call("getTotalContactsCount"))["code"] == "invalid_arg"


async def test_legacy_export_pages(sandbox: SandboxHandle) -> None:
    list_id = await sandbox.create_list("A")
    await sandbox.seed(list_id=list_id, count=5, fields={"Name": "User {i}"})
    names = [("field_names[]", "email"), ("field_names[]", "Name")]
    page = await sandbox.call("exportContacts", names, list_id=list_id, offset=3, limit=10)
    assert page["result"] == {
        "field_names": ["email", "Name"],
        "data": [["user3@example.com", "User 3"], ["user4@example.com", "User 4"]],
    }
    end = await sandbox.call("exportContacts", names, list_id=list_id, offset=5, limit=10)
    assert end["result"]["data"] == []
    too_big = await sandbox.call("exportContacts", names, limit=1001)
    assert too_big["code"] == "invalid_arg"
