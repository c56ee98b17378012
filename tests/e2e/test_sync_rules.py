"""PRODUCT.md's rules through the real CLI: `syncd sync` in a subprocess against a fresh database
and the sandbox, checked the way a user would — exit status, `syncd runs --json`, the sandbox's
contact state (admin API) and the local table. Covers updates, each delete_mode, each
remote_only mode, duplicates, rejections and quarantine, status writeback and the opt-out column.
(Adds, dry-run, the guards, concurrency and kill -9 are in test_sync_cli.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncd.reconcile.actions import COUNT_NAMES
from tests.e2e.cli_harness import Cli
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture

STATUS_COLUMNS = {"email_status", "phone_status"}


def sent_rows(calls: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every row of every importContacts call, as {field name: value}."""
    return [
        dict(zip(call["params"]["field_names"], row, strict=True))
        for call in calls
        for row in call["params"]["data"]
    ]


def status_cells(calls: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(email, column, value) of every status cell ever sent."""
    return [
        (row["email"], name, value)
        for row in sent_rows(calls)
        for name, value in row.items()
        if name in STATUS_COLUMNS
    ]


async def seed_member(harness: Harness, email: str, status: str = "active", **extra: Any) -> None:
    """A contact already in the list that syncd never pushed (an import, a sign-up form...)."""
    await harness.sandbox.upsert_contacts(
        [{"email": email, "email_status": status, "email_list_ids": [harness.list_id], **extra}]
    )


async def sync_ok(cli: Cli, *args: str) -> None:
    result = await cli.sync(*args)
    assert result.code == 0, result
    assert "newsletter: succeeded" in result.out, result


async def outcomes(harness: Harness, run_id: int) -> list[tuple[str, str, str, str | None]]:
    """(key, action, outcome, code) of syncd.row_outcomes for one run."""
    rows = await harness.db.fetch(
        "SELECT key, action, outcome, code FROM syncd.row_outcomes WHERE run_id = $1"
        " ORDER BY key, outcome",
        run_id,
    )
    return [(r["key"], r["action"], r["outcome"], r["code"]) for r in rows]


# --- updates ----------------------------------------------------------------------------------


async def test_local_edit_reaches_selzy_fields_and_sends_no_status(
    harness: Harness, tmp_path: Path
) -> None:
    cli = Cli.write(harness, tmp_path)
    await harness.insert(
        {"email": "ann@example.com", "first_name": "Ann"},
        {"email": "bob@example.com", "first_name": "Bob"},
    )
    await sync_ok(cli)
    # the person confirms in Selzy: an update must not send that status back (or any other)
    await harness.sandbox.upsert_contacts([{"email": "ann@example.com", "email_status": "active"}])
    await harness.sandbox.clear_calls()
    await harness.db.execute(
        "UPDATE public.contacts SET first_name = 'Annie', city = 'Bergen'"
        " WHERE email = 'ann@example.com'"
    )
    await sync_ok(cli)

    [call] = await harness.import_calls()
    assert call["params"]["field_names"] == ["email", "Name", "City"]
    assert call["params"]["data"] == [["ann@example.com", "Annie", "Bergen"]]
    members = await harness.members()
    assert members["ann@example.com"]["fields"] == {"Name": "Annie", "City": "Bergen"}
    assert members["ann@example.com"]["email_status"] == "active"
    assert members["bob@example.com"]["fields"] == {"Name": "Bob"}
    run = await cli.last_run()
    assert (run["status"], run["added"], run["updated"]) == ("succeeded", 0, 1)


# --- deletes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("delete_mode", ["delete", "exclude", "off"])
async def test_contact_removed_locally_follows_delete_mode(
    harness: Harness, tmp_path: Path, delete_mode: str
) -> None:
    cli = Cli.write(harness, tmp_path, delete_mode=delete_mode)
    await harness.insert(
        {"email": "keep@example.com", "first_name": "Keep"},
        {"email": "gone@example.com", "first_name": "Gone"},
    )
    await sync_ok(cli)
    await harness.db.execute("DELETE FROM public.contacts WHERE email = 'gone@example.com'")
    await harness.sandbox.clear_calls()
    await sync_ok(cli)

    run = await cli.last_run()
    gone = await harness.remote("gone@example.com")
    assert "keep@example.com" in await harness.members()
    if delete_mode == "delete":
        assert gone is None  # deleted from the account
        assert (run["deleted"], run["excluded"]) == (1, 0)
    elif delete_mode == "exclude":
        assert gone is not None
        assert harness.list_id not in gone["email_list_ids"]
        assert harness.list_id not in gone["email_unsubscribed_list_ids"]
        assert gone["email_status"] == "new"  # removed from the list, not unsubscribed
        assert gone["fields"] == {"Name": "Gone"}
        assert (run["deleted"], run["excluded"]) == (0, 1)
    else:
        assert gone is not None
        assert harness.list_id in gone["email_list_ids"]
        assert (run["deleted"], run["excluded"]) == (0, 0)
        assert await harness.import_calls() == []


async def test_unsubscribed_contact_removed_locally_is_excluded_not_deleted(
    harness: Harness, tmp_path: Path
) -> None:
    """delete_mode = delete never erases a suppression record."""
    cli = Cli.write(harness, tmp_path, delete_mode="delete")
    await harness.insert({"email": "keep@example.com"}, {"email": "unsub@example.com"})
    await sync_ok(cli)
    await harness.sandbox.upsert_contacts(
        [{"email": "unsub@example.com", "email_status": "unsubscribed"}]
    )
    await harness.db.execute("DELETE FROM public.contacts WHERE email = 'unsub@example.com'")
    await sync_ok(cli)

    contact = await harness.remote("unsub@example.com")
    assert contact is not None, "the suppression record was erased"
    assert contact["email_status"] == "unsubscribed"
    assert harness.list_id not in contact["email_list_ids"]
    assert not [row for row in sent_rows(await harness.import_calls()) if "delete" in row]
    run = await cli.last_run()
    assert (run["deleted"], run["excluded"]) == (0, 1)


# --- remote-only contacts ---------------------------------------------------------------------


@pytest.mark.parametrize("remote_only", ["keep", "delete", "import"])
async def test_remote_only_contacts_follow_remote_only_mode(
    harness: Harness, tmp_path: Path, remote_only: str
) -> None:
    cli = Cli.write(harness, tmp_path, remote_only=remote_only)
    await seed_member(harness, "form@example.com", fields={"Name": "From The Form"})
    await seed_member(harness, "unsub@example.com", status="unsubscribed")
    await harness.insert({"email": "local@example.com", "first_name": "Local"})
    await sync_ok(cli)

    run = await cli.last_run()
    assert run["remote_only"] == 2
    assert run["added"] == 1
    form = await harness.remote("form@example.com")
    unsub = await harness.remote("unsub@example.com")
    assert unsub is not None, "a suppression record was erased"
    assert unsub["email_status"] == "unsubscribed"
    local = await harness.local()
    if remote_only == "keep":
        assert set(await harness.members()) == {
            "form@example.com",
            "unsub@example.com",
            "local@example.com",
        }
        assert set(local) == {"local@example.com"}
        assert (run["deleted"], run["excluded"], run["imported"]) == (0, 0, 0)
    elif remote_only == "delete":
        assert form is None
        assert harness.list_id not in unsub["email_list_ids"]  # excluded, kept in the account
        assert set(await harness.members()) == {"local@example.com"}
        assert set(local) == {"local@example.com"}
        assert (run["deleted"], run["excluded"], run["imported"]) == (1, 1, 0)
    else:
        assert set(local) == {"local@example.com", "form@example.com", "unsub@example.com"}
        assert local["form@example.com"]["selzy_email_status"] == "active"
        assert local["form@example.com"]["selzy_list_status"] == "subscribed"
        assert local["unsub@example.com"]["selzy_email_status"] == "unsubscribed"
        assert run["imported"] == 2
        assert form is not None
        assert form["fields"] == {"Name": "From The Form"}
        # two-way from now on: the imported rows are local contacts, nothing left to import
        await harness.sandbox.clear_calls()
        await sync_ok(cli)
        again = await cli.last_run()
        assert (again["imported"], again["remote_only"]) == (0, 0)
        assert await harness.import_calls() == []
        assert len(await harness.local()) == 3


# --- duplicates -------------------------------------------------------------------------------


async def test_duplicate_rows_are_pushed_once_and_reported_every_run(
    harness: Harness, tmp_path: Path
) -> None:
    cli = Cli.write(harness, tmp_path)
    await harness.insert(
        {"email": "dup@example.com", "first_name": "First"},
        {"email": " DUP@Example.com ", "first_name": "Second"},
        {"email": "solo@example.com", "first_name": "Solo"},
    )
    await sync_ok(cli)
    sent = [row["email"] for row in sent_rows(await harness.import_calls())]
    assert sorted(sent) == ["dup@example.com", "solo@example.com"]
    winner = (await harness.members())["dup@example.com"]["fields"]["Name"]
    assert winner in {"First", "Second"}

    await harness.sandbox.clear_calls()
    await sync_ok(cli)
    assert await harness.import_calls() == []  # no flip-flop to the other row
    assert (await harness.members())["dup@example.com"]["fields"]["Name"] == winner

    second, first = await cli.runs()
    assert (first["added"], first["duplicates"]) == (2, 1)
    assert (second["added"], second["duplicates"]) == (0, 1)
    for run in (first, second):
        assert await outcomes(harness, run["id"]) == [
            ("dup@example.com", "none", "duplicate", "duplicate_key")
        ]


# --- rejections and quarantine ----------------------------------------------------------------


async def test_role_address_is_rejected_each_run_then_quarantined_and_no_longer_sent(
    harness: Harness, tmp_path: Path
) -> None:
    cli = Cli.write(harness, tmp_path, quarantine_after=2)
    await harness.insert(
        {"email": "info@example.com", "first_name": "Role"},
        {"email": "ok@example.com", "first_name": "Ok"},
        {"email": "not-an-email", "first_name": "Typo"},
    )
    sent_per_run = []
    for _ in range(3):
        await harness.sandbox.clear_calls()
        await sync_ok(cli)  # rejections do not fail the run
        sent_per_run.append(sorted(row["email"] for row in sent_rows(await harness.import_calls())))
    assert sent_per_run == [["info@example.com", "ok@example.com"], ["info@example.com"], []]
    assert set(await harness.members()) == {"ok@example.com"}

    third, second, first = await cli.runs()
    # rejected counts refusals by Selzy and by syncd's own key validation alike
    assert (first["added"], first["rejected"], first["quarantined"]) == (1, 2, 0)
    assert (second["added"], second["rejected"], second["quarantined"]) == (0, 2, 0)
    assert (third["added"], third["rejected"], third["quarantined"]) == (0, 1, 1)
    for run in (first, second):
        assert await outcomes(harness, run["id"]) == [
            ("info@example.com", "add", "rejected", "role_address"),
            ("not-an-email", "none", "invalid_key", "invalid_email"),
        ]
    assert await outcomes(harness, third["id"]) == [
        ("info@example.com", "add", "quarantined", "role_address"),
        ("not-an-email", "none", "invalid_key", "invalid_email"),
    ]


# --- status writeback -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "column", "expected"),
    [
        ({"email_status": "unsubscribed"}, "selzy_email_status", "unsubscribed"),
        ({"email_status": "blocked"}, "selzy_email_status", "blocked"),
        ({"email_unsubscribed_list_ids": "LIST"}, "selzy_list_status", "unsubscribed"),
    ],
    ids=["unsubscribed", "blocked", "list-unsubscribe"],
)
async def test_status_change_in_selzy_is_written_back_to_the_local_table(
    harness: Harness, tmp_path: Path, change: dict[str, Any], column: str, expected: str
) -> None:
    cli = Cli.write(harness, tmp_path)
    await seed_member(harness, "w@example.com", fields={"Name": "W"})
    await seed_member(harness, "x@example.com", fields={"Name": "X"})
    await harness.insert(
        {"email": "w@example.com", "first_name": "W"},
        {"email": "x@example.com", "first_name": "X"},
    )
    await sync_ok(cli)
    local = await harness.local()
    for email in ("w@example.com", "x@example.com"):
        assert local[email]["selzy_email_status"] == "active"
        assert local[email]["selzy_list_status"] == "subscribed"

    patch = {k: [harness.list_id] if v == "LIST" else v for k, v in change.items()}
    await harness.sandbox.upsert_contacts([{"email": "w@example.com", **patch}])  # the person
    await harness.sandbox.clear_calls()
    await sync_ok(cli)

    local = await harness.local()
    assert local["w@example.com"][column] == expected
    assert local["x@example.com"]["selzy_email_status"] == "active"
    assert local["x@example.com"]["selzy_list_status"] == "subscribed"
    assert await harness.import_calls() == []  # Selzy owns the status: nothing to push back
    run = await cli.last_run()
    assert (run["status_changes"], run["written_back"]) == (1, 1)
    contact = await harness.remote("w@example.com")
    assert contact is not None
    for key, value in patch.items():
        assert contact[key] == value


# --- opt-out ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "inactive", "new"])
async def test_opt_out_makes_the_contact_unmailable_and_clearing_it_never_resubscribes(
    harness: Harness, tmp_path: Path, status: str
) -> None:
    cli = Cli.write(harness, tmp_path)
    await seed_member(harness, "opt@example.com", status=status)
    await harness.insert({"email": "opt@example.com", "first_name": "Opt", "opted_out": True})
    await sync_ok(cli)

    contact = await harness.remote("opt@example.com")
    assert contact is not None
    if status in ("active", "inactive"):  # Selzy allows the change: email_status unsubscribed
        assert contact["email_status"] == "unsubscribed"
        assert status_cells(await harness.import_calls()) == [
            ("opt@example.com", "email_status", "unsubscribed")
        ]
    else:  # "new" cannot be changed through importContacts: unsubscribed from the list instead
        assert contact["email_status"] == "new"
        assert harness.list_id in contact["email_unsubscribed_list_ids"]
        assert status_cells(await harness.import_calls()) == []
    assert (await cli.last_run())["opted_out"] == 1
    unmailable = {k: contact[k] for k in ("email_status", "email_unsubscribed_list_ids")}

    # the opt-out is cleared locally and the profile edited: fields flow, consent does not
    await harness.db.execute("UPDATE public.contacts SET opted_out = false, first_name = 'Back'")
    await sync_ok(cli)
    contact = await harness.remote("opt@example.com")
    assert contact is not None
    assert {k: contact[k] for k in unmailable} == unmailable
    assert contact["fields"]["Name"] == "Back"
    assert {cell[2] for cell in status_cells(await harness.import_calls())} <= {"unsubscribed"}
    assert (await cli.last_run())["opted_out"] == 0


# --- exit status and the run log as a user checks them ----------------------------------------


async def test_failed_run_exits_1_and_the_run_log_agrees_with_the_summary_lines(
    harness: Harness, tmp_path: Path
) -> None:
    cli = Cli.write(harness, tmp_path)
    # an operator who wants no retries (keeps the test free of back-off sleeps)
    text = cli.config.read_text(encoding="utf-8")
    assert "max_attempts = 3" in text
    cli.config.write_text(text.replace("max_attempts = 3", "max_attempts = 1"), encoding="utf-8")
    await harness.insert(*({"email": f"u{i}@example.com", "first_name": f"U{i}"} for i in range(3)))
    await harness.sandbox.fault(method="importContacts", kind="http_status", status=503, times=-1)
    failed = await cli.sync()
    assert failed.code == 1, failed
    assert "newsletter: failed" in failed.out
    assert await harness.members() == {}

    await harness.sandbox.clear_faults()
    done = await cli.sync()
    assert done.code == 0, done
    assert set(await harness.members()) == {f"u{i}@example.com" for i in range(3)}

    runs = await cli.runs("--job", "newsletter")
    assert [r["status"] for r in runs] == ["succeeded", "failed"]
    assert "503" in runs[1]["error"]
    assert runs[1]["added"] == 0
    assert runs[0]["error"] is None
    for result, run in ((done, runs[0]), (failed, runs[1])):
        [line] = result.events("run_finished")
        assert line["run_id"] == run["id"]
        assert line["status"] == run["status"]
        assert {n: line[n] for n in COUNT_NAMES} == {n: run[n] for n in COUNT_NAMES}
    # the log line names what went wrong with Selzy, by code (also /metrics' syncd_api_errors_total)
    assert failed.events("run_finished")[0]["api_errors"] == {"http_503": 1}
    assert done.events("run_finished")[0]["api_errors"] == {}
    assert (runs[0]["added"], runs[0]["local_count"], runs[0]["remote_count"]) == (3, 3, 0)
    assert [r["id"] for r in await cli.runs("--limit", "1")] == [runs[0]["id"]]
    assert await cli.runs("--job", "other") == []
