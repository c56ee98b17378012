"""The sandbox accepts what real Selzy clients send (selzy-api.md §9.1) and answers in envelopes."""

from __future__ import annotations

import bz2
import gzip
import json
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from tests.fixtures.sandbox import SandboxHandle


async def _post_raw(
    sandbox: SandboxHandle, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, dict[str, object]]:
    async with sandbox.session.post(f"{sandbox.base_url}/{path}", data=body, headers=headers) as r:
        return r.status, r.headers["Content-Type"], json.loads(await r.read())


async def _titles(sandbox: SandboxHandle) -> list[str]:
    lists = (await sandbox.call("getLists"))["result"]
    return [entry["title"] for entry in lists]


async def test_get_with_everything_in_the_query_string(sandbox: SandboxHandle) -> None:
    url = f"{sandbox.base_url}/createList?format=json&api_key={sandbox.api_key}&title=Q"
    async with sandbox.session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        body = await response.json()
    assert set(body) == {"result"}
    assert isinstance(body["result"]["id"], int)
    assert await _titles(sandbox) == ["Q"]


@pytest.mark.parametrize("lang", ["en", "ru", "ua", "it"])
async def test_every_language_prefix_serves_the_api(sandbox: SandboxHandle, lang: str) -> None:
    url = f"{sandbox.root_url}/{lang}/api/getLists"
    async with sandbox.session.post(url, data={"api_key": sandbox.api_key}) as response:
        assert await response.json() == {"result": []}


async def test_unknown_language_prefix_is_not_an_api_route(sandbox: SandboxHandle) -> None:
    async with sandbox.session.post(f"{sandbox.root_url}/de/api/getLists") as response:
        assert response.status == 404


async def test_format_parameter_is_optional(sandbox: SandboxHandle) -> None:
    async with sandbox.session.post(
        sandbox.url("getLists"), data={"api_key": sandbox.api_key}
    ) as response:
        assert (await response.json()) == {"result": []}


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8"],
)
async def test_form_body_with_and_without_charset(
    sandbox: SandboxHandle, content_type: str
) -> None:
    body = urlencode({"api_key": sandbox.api_key, "title": "Привет"}).encode()
    status, _ctype, envelope = await _post_raw(
        sandbox, "createList", body, {"Content-Type": content_type}
    )
    assert status == 200
    assert "result" in envelope
    assert await _titles(sandbox) == ["Привет"]


async def test_multipart_form_body(sandbox: SandboxHandle) -> None:
    form = aiohttp.FormData()
    form.add_field("api_key", sandbox.api_key)
    form.add_field("title", "Multi")
    async with sandbox.session.post(sandbox.url("createList"), data=form()) as response:
        assert "result" in await response.json()
    assert await _titles(sandbox) == ["Multi"]


async def test_multipart_import_with_sparse_cells(sandbox: SandboxHandle) -> None:
    """unisender-integration sends multipart and skips empty cells (data[0][1] absent)."""
    await sandbox.create_field("Name")
    form = aiohttp.FormData()
    for key, value in [
        ("api_key", sandbox.api_key),
        ("field_names[0]", "email"),
        ("field_names[1]", "Name"),
        ("field_names[2]", "tags"),
        ("data[0][0]", "a@example.com"),
        ("data[0][2]", "vip"),
    ]:
        form.add_field(key, value)
    async with sandbox.session.post(sandbox.url("importContacts"), data=form()) as response:
        result = (await response.json())["result"]
    assert result["inserted"] == 1
    contact = await sandbox.contact("a@example.com")
    assert contact is not None
    assert contact["tags"] == ["vip"]
    assert contact["fields"] == {}


async def test_bzip2_compressed_body(sandbox: SandboxHandle) -> None:
    body = bz2.compress(urlencode({"title": "Packed", "format": "json"}).encode())
    url = f"{sandbox.url('createList')}?api_key={sandbox.api_key}&request_compression=bzip2"
    async with sandbox.session.post(
        url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    ) as response:
        assert "result" in await response.json()
    assert await _titles(sandbox) == ["Packed"]


async def test_gzip_content_encoding(sandbox: SandboxHandle) -> None:
    body = gzip.compress(urlencode({"api_key": sandbox.api_key, "title": "Zipped"}).encode())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Encoding": "gzip",
    }
    _status, _, envelope = await _post_raw(sandbox, "createList", body, headers)
    assert "result" in envelope
    assert await _titles(sandbox) == ["Zipped"]


async def test_empty_body_uses_the_query(sandbox: SandboxHandle) -> None:
    url = f"{sandbox.url('createList')}?api_key={sandbox.api_key}&title=Empty"
    async with sandbox.session.post(url) as response:
        assert "result" in await response.json()
    assert await _titles(sandbox) == ["Empty"]


async def test_json_body_is_ignored_and_the_query_counts(sandbox: SandboxHandle) -> None:
    """chmerev/unisender-api sends everything in the query and an accidental JSON body."""
    url = f"{sandbox.url('createList')}?format=json&api_key={sandbox.api_key}&title=Q"
    async with sandbox.session.post(url, json={"headers": {"x": 1}}) as response:
        assert "result" in await response.json()
    assert await _titles(sandbox) == ["Q"]


async def test_body_parameter_wins_over_the_query(sandbox: SandboxHandle) -> None:
    url = f"{sandbox.url('createList')}?api_key=wrong&title=FromQuery&format=json"
    async with sandbox.session.post(
        url, data={"api_key": sandbox.api_key, "title": "FromBody"}
    ) as response:
        assert "result" in await response.json()
    assert await _titles(sandbox) == ["FromBody"]


@pytest.mark.parametrize("encode_brackets", [True, False])
async def test_indexed_brackets_raw_and_percent_encoded(
    sandbox: SandboxHandle, encode_brackets: bool
) -> None:
    pairs = [
        ("api_key", sandbox.api_key),
        ("field_names[0]", "email"),
        ("field_names[1]", "email_status"),
        ("data[0][0]", "a@example.com"),
        ("data[0][1]", "active"),
        ("data[1][0]", "b@example.com"),
        ("data[1][1]", "active"),
    ]
    safe = "" if encode_brackets else "[]"
    body = "&".join(f"{quote(k, safe=safe)}={quote(v, safe='@')}" for k, v in pairs)
    assert ("%5B" in body) is encode_brackets
    _, _, envelope = await _post_raw(
        sandbox,
        "importContacts",
        body.encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert envelope["result"]["inserted"] == 2  # type: ignore[index]
    statuses = {c["email"]: c["email_status"] for c in await sandbox.contacts()}
    assert statuses == {"a@example.com": "active", "b@example.com": "active"}


async def test_unordered_sparse_row_indices(sandbox: SandboxHandle) -> None:
    """Go's url.Values sorts keys, so data[10][0] arrives before data[2][0]."""
    pairs = [
        ("api_key", sandbox.api_key),
        ("data[10][0]", "ten@example.com"),
        ("data[2][0]", "two@example.com"),
        ("field_names[0]", "email"),
    ]
    envelope = await sandbox.call("importContacts", pairs[1:])
    result = envelope["result"]
    assert result["total"] == 11  # rows 0,1,3..9 are missing: empty rows, rejected
    assert result["inserted"] == 2
    assert {entry["index"] for entry in result["log"]} == set(range(11)) - {2, 10}


async def test_appended_and_indexed_field_names_are_equivalent(sandbox: SandboxHandle) -> None:
    await sandbox.upsert_contacts([{"email": "a@example.com", "email_status": "active"}])
    appended = await sandbox.call(
        "exportContacts", [("field_names[]", "email"), ("field_names[]", "email_status")]
    )
    indexed = await sandbox.call(
        "exportContacts", [("field_names[1]", "email_status"), ("field_names[0]", "email")]
    )
    assert appended == indexed
    assert appended["result"] == {
        "field_names": ["email", "email_status"],
        "data": [["a@example.com", "active"]],
    }


async def test_named_keys_become_a_map(sandbox: SandboxHandle) -> None:
    list_id = await sandbox.create_list("L")
    await sandbox.create_field("Name")
    envelope = await sandbox.call(
        "subscribe",
        [("fields[email]", "a@example.com"), ("fields[Name]", "Ann")],
        list_ids=str(list_id),
        double_optin=3,
    )
    assert isinstance(envelope["result"]["person_id"], int)
    contact = await sandbox.contact("a@example.com")
    assert contact is not None
    assert contact["fields"] == {"Name": "Ann"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", ["t2"]),
        ("true", ["t2"]),
        ("True", ["t2"]),
        ("0", ["t1", "t2"]),
        ("false", ["t1", "t2"]),
    ],
)
async def test_boolean_spellings(sandbox: SandboxHandle, value: str, expected: list[str]) -> None:
    await sandbox.upsert_contacts([{"email": "a@example.com", "tags": ["t1"]}])
    form = [("field_names[0]", "email"), ("field_names[1]", "tags")]
    form += [("data[0][0]", "a@example.com"), ("data[0][1]", "t2")]
    await sandbox.call("importContacts", form, overwrite_tags=value)
    contact = await sandbox.contact("a@example.com")
    assert contact is not None
    assert contact["tags"] == expected


async def test_bad_boolean_is_invalid_arg(sandbox: SandboxHandle) -> None:
    form = [("field_names[0]", "email"), ("data[0][0]", "a@example.com")]
    envelope = await sandbox.call("importContacts", form, overwrite_tags="maybe")
    assert envelope["code"] == "invalid_arg"


async def test_invalid_api_key_is_an_error_envelope_with_http_200(sandbox: SandboxHandle) -> None:
    async with sandbox.session.post(sandbox.url("getLists"), data={"api_key": "nope"}) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        body = await r.json()
    assert body == {"error": "Invalid API key", "code": "invalid_api_key", "result": ""}


async def test_missing_api_key_is_invalid_api_key(sandbox: SandboxHandle) -> None:
    async with sandbox.session.post(sandbox.url("getLists")) as r:
        assert (await r.json())["code"] == "invalid_api_key"


@pytest.mark.parametrize("method", ["isContactInList", "async/nothing", "getlists"])
async def test_unknown_method(sandbox: SandboxHandle, method: str) -> None:
    envelope = await sandbox.call(method)
    assert envelope["code"] == "unknown_method"
    assert method in envelope["error"]
    assert envelope["result"] == ""


async def test_corrupt_bzip2_body_is_invalid_arg(sandbox: SandboxHandle) -> None:
    url = f"{sandbox.url('getLists')}?api_key={sandbox.api_key}&request_compression=bzip2"
    async with sandbox.session.post(url, data=b"not bzip2 at all") as response:
        assert (await response.json())["code"] == "invalid_arg"
