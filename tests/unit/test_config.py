"""Configuration loading: types, values, unknown keys, all problems at once, the API key's sources,
schedules, and secrets that never show in a repr."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from syncd.config import (
    NO_API_KEY,
    Config,
    DatabaseConfig,
    JobConfig,
    LogConfig,
    MetricsConfig,
    Secret,
    SelzyConfig,
    WebhookConfig,
    load_config,
    parse_config,
    parse_schedule,
    require_api_key,
)
from syncd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
KEY = "k3y-for-config-tests-8d1f"
ENV = {"SELZY_API_KEY": KEY}


def minimal() -> dict[str, Any]:
    return {
        "database": {"dsn": "postgresql://syncd:hunter2-pw@db.example/crm"},
        "jobs": [
            {
                "name": "newsletter",
                "list_id": 7,
                "table": "public.contacts",
                "fields": {"email": "email", "Name": "first_name"},
            }
        ],
    }


def with_value(path: str, value: Any) -> dict[str, Any]:
    """minimal() with `value` set at a dotted path; `jobs.` means the first job."""
    data = minimal()
    target: Any = data
    *parents, last = path.split(".")
    for part in parents:
        target = target["jobs"][0] if part == "jobs" else target.setdefault(part, {})
    target[last] = value
    return data


def problems_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV if environ is None else environ)
    return info.value.problems


def test_example_config_loads_cleanly() -> None:
    cfg = load_config(REPO / "config.example.toml", environ=ENV)
    assert cfg.selzy.api_key == Secret(KEY)
    assert cfg.selzy.base_url == "https://api.selzy.com/en/api"
    assert cfg.webhook is not None
    assert cfg.metrics is not None
    [job] = cfg.jobs
    assert job.schedule.interval_seconds == 900
    assert list(job.fields) == ["email", "phone", "Name"]  # config order is kept
    assert set(job.writeback) == {
        "email_status",
        "phone_status",
        "email_availability",
        "list_status",
    }


def test_example_config_documents_every_setting_with_its_default() -> None:
    with (REPO / "config.example.toml").open("rb") as fh:
        example = tomllib.load(fh)
    sections = {
        "selzy": SelzyConfig,
        "database": DatabaseConfig,
        "log": LogConfig,
        "webhook": WebhookConfig,
        "metrics": MetricsConfig,
    }
    for name, cls in sections.items():
        settings = {f.name for f in dataclasses.fields(cls)} - {"api_key"}
        assert set(example[name]) == settings, name
    [job] = example["jobs"]
    assert set(job) == {f.name for f in dataclasses.fields(JobConfig)}
    defaults = JobConfig(
        name="x",
        list_id=1,
        table="t",
        match="email",
        schedule=parse_schedule("every 1m"),
        fields={},
    )
    for key in ("remote_only", "delete_mode", "max_deletes", "max_delete_fraction", "batch_size"):
        assert job[key] == getattr(defaults, key), key
    assert example["selzy"]["timeout"] == SelzyConfig().timeout
    assert example["database"]["pool_size"] == DatabaseConfig().pool_size


def test_minimal_config_takes_every_default() -> None:
    cfg = parse_config(minimal(), environ={})
    assert cfg.selzy.timeout == 30.0
    assert cfg.selzy.max_attempts == 5
    assert cfg.database.pool_size == 4
    assert cfg.log.level == "info"
    assert cfg.webhook is None
    assert cfg.metrics is None
    [job] = cfg.jobs
    assert (job.match, job.remote_only, job.delete_mode) == ("email", "keep", "delete")
    assert job.schedule.interval_seconds == 900
    assert job.batch_size == 500
    assert job.opt_out_column is None
    assert job.writeback == {}


WRONG_TYPES = [
    ("selzy.base_url", 1, "expected a string, got integer"),
    ("selzy.api_key_file", True, "expected a string, got boolean"),
    ("selzy.timeout", "30", "expected a number, got string"),
    ("selzy.max_attempts", 2.5, "expected an integer, got float"),
    ("selzy.max_attempts", True, "expected an integer, got boolean"),
    ("selzy.rate_limit_per_minute", "1200", "expected an integer, got string"),
    ("selzy.export_rate_limit_per_minute", 20.0, "expected an integer, got float"),
    ("selzy.export_deadline", [1], "expected a number, got array"),
    ("selzy.poll_interval", True, "expected a number, got boolean"),
    ("selzy.poll_interval_max", {}, "expected a number, got table"),
    ("database.dsn", 5432, "expected a string, got integer"),
    ("database.pool_size", "4", "expected an integer, got string"),
    ("database.connect_timeout", False, "expected a number, got boolean"),
    ("database.statement_timeout", "0", "expected a number, got string"),
    ("log.level", 1, "expected a string, got integer"),
    ("log.format", True, "expected a string, got boolean"),
    ("webhook.listen", 8089, "expected a string, got integer"),
    ("webhook.public_url", 1, "expected a string, got integer"),
    ("webhook.max_body_bytes", 1.5, "expected an integer, got float"),
    ("webhook.events", "yes", "expected a boolean, got string"),
    ("webhook.max_event_body_bytes", "4M", "expected an integer, got string"),
    (
        "webhook.hook_check_interval",
        True,
        'expected a duration (seconds, or "30s", "15m", "24h", "7d"), got boolean',
    ),
    ("metrics.listen", 9108, "expected a string, got integer"),
    ("jobs.name", 1, "expected a string, got integer"),
    ("jobs.list_id", "7", "expected an integer, got string"),
    ("jobs.list_id", True, "expected an integer, got boolean"),
    ("jobs.table", ["contacts"], "expected a string, got array"),
    ("jobs.match", 1, "expected a string, got integer"),
    ("jobs.schedule", 15, "expected a string, got integer"),
    ("jobs.remote_only", True, "expected a string, got boolean"),
    ("jobs.delete_mode", 0, "expected a string, got integer"),
    ("jobs.max_deletes", 10.0, "expected an integer, got float"),
    ("jobs.max_delete_fraction", "0.1", "expected a number, got string"),
    ("jobs.opt_out_column", False, "expected a string, got boolean"),
    ("jobs.fields", ["email"], "expected a table, got array"),
    ("jobs.fields.Name", 1, "expected a string, got integer"),
    ("jobs.writeback", "x", "expected a table, got string"),
    ("jobs.writeback.email_status", 1, "expected a string, got integer"),
    ("jobs.batch_size", "500", "expected an integer, got string"),
    ("jobs.max_in_flight", 2.0, "expected an integer, got float"),
    ("jobs.quarantine_after", False, "expected an integer, got boolean"),
    ("jobs.run_timeout", "1h", "expected a number, got string"),
    ("jobs.run_at_start", 1, "expected a boolean, got integer"),
    ("jobs.event_backlog_run", 0.5, "expected an integer, got float"),
]


@pytest.mark.parametrize(("path", "value", "message"), WRONG_TYPES)
def test_wrong_type_is_named_by_its_key_path(path: str, value: Any, message: str) -> None:
    data = with_value(path, value)
    if path.startswith("webhook.") and path != "webhook.public_url":
        data["webhook"]["public_url"] = "https://hooks.example/cb"
    shown = path.replace("jobs.", "jobs[0].", 1)
    assert f"{shown}: {message}" in problems_of(data)


def test_section_of_the_wrong_type_is_an_error() -> None:
    data = minimal()
    data["selzy"] = "https://api.selzy.com"
    data["jobs"] = {"name": "x"}
    assert problems_of(data) == [
        "selzy: expected a table, got string",
        "jobs: expected an array of tables ([[jobs]]), got table",
    ]


BAD_VALUES = [
    ("selzy.base_url", "ftp://api.selzy.com", "expected an http:// or https:// URL with a host"),
    ("selzy.base_url", "https://api.selzy.com/en/api?lang=en", "must not contain a query string"),
    ("selzy.base_url", "https://u:p@api.selzy.com/en/api", "must not contain credentials"),
    ("selzy.timeout", 0, "must be greater than 0, got 0"),
    ("selzy.max_attempts", 0, "must be between 1 and 100, got 0"),
    ("selzy.rate_limit_per_minute", 0, "must be at least 1, got 0"),
    ("selzy.export_deadline", -5, "must be greater than 0, got -5"),
    ("selzy.api_key_file", "", "is empty"),
    ("database.dsn", "", "is empty (omit it to use the libpq PG* environment variables)"),
    ("database.dsn", "mysql://x@y/z", "expected a postgresql:// URL or a libpq keyword string"),
    ("database.pool_size", 0, "must be between 1 and 100, got 0"),
    ("database.statement_timeout", -1, "must be at least 0, got -1"),
    ("log.level", "verbose", "expected one of debug, info, warning, error, got 'verbose'"),
    ("log.format", "xml", "expected one of auto, json, console, got 'xml'"),
    ("metrics.listen", "9108", "expected host:port (port 0-65535), got '9108'"),
    (
        "metrics.listen",
        "localhost:99999",
        "expected host:port (port 0-65535), got 'localhost:99999'",
    ),
    ("jobs.name", "news letter", "expected letters, digits, '_', '.', '-', got 'news letter'"),
    ("jobs.list_id", 0, "must be at least 1, got 0"),
    ("jobs.table", "a.b.c", 'expected "table" or "schema.table", got \'a.b.c\''),
    ("jobs.table", ".contacts", "the schema name is empty"),
    ("jobs.table", "public.", "the table name is empty"),
    ("jobs.table", "", "the table name is empty"),
    ("jobs.table", "x" * 64, "the table name is longer than 63 bytes"),
    ("jobs.match", "sms", "expected one of email, phone, got 'sms'"),
    ("jobs.remote_only", "mirror", "expected one of keep, delete, import, got 'mirror'"),
    ("jobs.delete_mode", "purge", "expected one of delete, exclude, off, got 'purge'"),
    ("jobs.max_deletes", -1, "must be at least 0, got -1"),
    ("jobs.max_delete_fraction", 1.5, "must be between 0 and 1, got 1.5"),
    ("jobs.opt_out_column", "", "the column name is empty"),
    ("jobs.batch_size", 501, "must be between 1 and 500, got 501"),
    ("jobs.batch_size", 0, "must be between 1 and 500, got 0"),
    ("jobs.max_in_flight", 9, "must be between 1 and 8, got 9"),
    ("jobs.quarantine_after", 0, "must be at least 1, got 0"),
    ("jobs.run_timeout", 0, "must be greater than 0, got 0"),
    ("jobs.fields.Name", "", "the column name is empty"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_VALUES)
def test_bad_value_is_named_by_its_key_path(path: str, value: Any, message: str) -> None:
    shown = path.replace("jobs.", "jobs[0].", 1)
    assert problems_of(with_value(path, value)) == [f"{shown}: {message}"]


def test_hostile_table_name_is_accepted_because_it_is_quoted_later() -> None:
    cfg = parse_config(with_value("jobs.table", 'public.x"; DROP TABLE users; --'), environ={})
    assert cfg.jobs[0].table == 'public.x"; DROP TABLE users; --'


def test_base_url_with_api_key_is_refused_without_echoing_it() -> None:
    [problem] = problems_of(with_value("selzy.base_url", "https://h/api?api_key=LEAKED123"))
    assert problem.startswith("selzy.base_url: must not contain an API key")
    assert "LEAKED123" not in problem


@pytest.mark.parametrize(
    ("data_path", "extra", "expected"),
    [
        ("selzzy", {}, "selzzy: unknown key (did you mean 'selzy'?)"),
        ("selzy.timout", 3, "selzy.timout: unknown key (did you mean 'timeout'?)"),
        ("database.password", "x", "database.password: unknown key"),
        ("log.lvl", "info", "log.lvl: unknown key (did you mean 'level'?)"),
        ("jobs.schedul", "every 1h", "jobs[0].schedul: unknown key (did you mean 'schedule'?)"),
        ("jobs.list", 3, "jobs[0].list: unknown key (did you mean 'list_id'?)"),
        (
            "jobs.writeback.emial_status",
            "s",
            "jobs[0].writeback.emial_status: unknown writeback key (did you mean 'email_status'?);"
            " expected one of email_status, phone_status, email_availability, list_status",
        ),
    ],
)
def test_unknown_key_is_an_error_with_its_path(data_path: str, extra: Any, expected: str) -> None:
    assert problems_of(with_value(data_path, extra)) == [expected]


def test_every_problem_is_reported_at_once() -> None:
    data = minimal()
    data["selzy"] = {"timeout": "30", "colour": "blue"}
    data["log"] = {"level": "loud"}
    data["jobs"][0]["fields"]["Name"] = 7
    data["jobs"].append(
        {"name": "newsletter", "list_id": -1, "table": "t", "fields": {"phone": "p"}}
    )
    assert problems_of(data) == [
        "selzy.timeout: expected a number, got string",
        "selzy.colour: unknown key",
        "log.level: expected one of debug, info, warning, error, got 'loud'",
        "jobs[0].fields.Name: expected a string, got integer",
        "jobs[1].list_id: must be at least 1, got -1",
        "jobs[1].fields: must map the match key 'email' to a column",
        "jobs[1].name: duplicate job name 'newsletter'",
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"email": "e", "email_status": "s"}, "jobs[0].fields.email_status: is a Selzy system"),
        ({"email": "e", "tags": "t"}, "jobs[0].fields.tags: is a Selzy system"),
        ({"email": "e", "delete": "d"}, "jobs[0].fields.delete: is a Selzy system"),
        ({"email": "e", "email_list_ids": "l"}, "jobs[0].fields.email_list_ids: is a Selzy"),
        ({"email": "e", "1st": "x"}, "jobs[0].fields.1st: a Selzy user field name is a letter"),
        ({"email": "e", "full name": "x"}, 'jobs[0].fields."full name": a Selzy user field'),
        ({"phone": "p"}, "jobs[0].fields: must map the match key 'email' to a column"),
    ],
)
def test_field_mapping_rules(fields: dict[str, str], expected: str) -> None:
    [problem] = problems_of(with_value("jobs.fields", fields))
    assert problem.startswith(expected)


def test_fields_are_required() -> None:
    data = minimal()
    del data["jobs"][0]["fields"]
    assert problems_of(data) == ["jobs[0].fields: missing (required)"]


@pytest.mark.parametrize("key", ["name", "list_id", "table"])
def test_job_key_is_required(key: str) -> None:
    data = minimal()
    del data["jobs"][0][key]
    assert problems_of(data) == [f"jobs[0].{key}: missing (required)"]


@pytest.mark.parametrize(
    ("writeback", "opt_out", "expected"),
    [
        (
            {"email_status": "first_name"},
            None,
            "column 'first_name' is already used by fields.Name",
        ),
        ({"email_status": "opted_out"}, "opted_out", "is already used by opt_out_column"),
        (
            {"email_status": "s", "phone_status": "s"},
            None,
            "jobs[0].writeback.phone_status: column 's' is already used by writeback.email_status",
        ),
    ],
)
def test_writeback_columns_must_be_distinct(
    writeback: dict[str, str], opt_out: str | None, expected: str
) -> None:
    data = with_value("jobs.writeback", writeback)
    if opt_out:
        data["jobs"][0]["opt_out_column"] = opt_out
    [problem] = problems_of(data)
    assert problem.startswith("jobs[0].writeback.")
    assert expected in problem


@pytest.mark.parametrize("jobs", [None, []])
def test_at_least_one_job_is_required(jobs: list[Any] | None) -> None:
    data = minimal()
    if jobs is None:
        del data["jobs"]
    else:
        data["jobs"] = jobs
    assert problems_of(data) == ["jobs: at least one [[jobs]] table is required"]


def test_webhook_needs_a_public_url_and_a_listen_address() -> None:
    data = minimal()
    data["webhook"] = {"listen": "8089"}
    assert problems_of(data) == [
        "webhook.listen: expected host:port (port 0-65535), got '8089'",
        "webhook.public_url: missing (required)",
    ]


@pytest.mark.parametrize(
    ("value", "seconds", "problem"),
    [
        ("1h", 3600.0, None),
        (30, 30.0, None),
        ("1s", 1.0, None),
        ("0.5s", None, "webhook.hook_check_interval: must be at least 1 second, got 0.5"),
        (0, None, "webhook.hook_check_interval: must be longer than 0 seconds, got 0"),
        ("hourly", None, "webhook.hook_check_interval: expected a duration"),
    ],
)
def test_the_hook_check_interval_is_a_duration_of_at_least_a_second(
    value: object, seconds: float | None, problem: str | None
) -> None:
    data = minimal()
    data["webhook"] = {
        "listen": "127.0.0.1:8089",
        "public_url": "https://sync.example.com/cb",
        "hook_check_interval": value,
    }
    if problem is None:
        cfg = parse_config(data, environ=ENV)
        assert cfg.webhook is not None
        assert cfg.webhook.hook_check_interval == seconds
    else:
        [found] = problems_of(data)
        assert found.startswith(problem), found


def test_poll_interval_max_below_poll_interval_is_an_error() -> None:
    data = minimal()
    data["selzy"] = {"poll_interval": 10, "poll_interval_max": 5}
    assert problems_of(data) == ["selzy.poll_interval_max: must be at least selzy.poll_interval"]


@pytest.mark.parametrize(
    ("text", "seconds", "cron"),
    [
        ("every 30s", 30, None),
        ("every 15m", 900, None),
        ("every 2h", 7200, None),
        ("every 1 h", 3600, None),
        ("*/15 * * * *", None, "*/15 * * * *"),
        ("0 3 * * mon-fri", None, "0 3 * * mon-fri"),
        ("0  0 1 JAN,jul *", None, "0 0 1 JAN,jul *"),
        ("5,10-20/5 0-23 1-31 1-12 0-7", None, "5,10-20/5 0-23 1-31 1-12 0-7"),
        ("30 4 1/2 * sun", None, "30 4 1/2 * sun"),
    ],
)
def test_schedule_forms(text: str, seconds: int | None, cron: str | None) -> None:
    schedule = parse_schedule(text)
    assert (schedule.interval_seconds, schedule.cron) == (seconds, cron)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("every 0m", "at least 1"),
        ("every 5d", "5-field cron"),
        ("every m", "5-field cron"),
        ("* * * *", "5-field cron"),
        ("@daily", "5-field cron"),
        ("60 * * * *", "minute field '60': 60 is outside 0-59"),
        ("* 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("* * 0 * *", "day of month field '0': 0 is outside 1-31"),
        ("* * * 13 *", "month field '13': 13 is outside 1-12"),
        ("* * * * 8", "day of week field '8': 8 is outside 0-7"),
        ("*/0 * * * *", "a step must be at least 1"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("* * * foo *", "'foo' is not a number or a name"),
        ("mon * * * *", "'mon' is not a number"),
        ("1,,2 * * * *", "cannot read ''"),
    ],
)
def test_bad_schedule_is_explained(text: str, fragment: str) -> None:
    [problem] = problems_of(with_value("jobs.schedule", text))
    assert problem.startswith("jobs[0].schedule: ")
    assert fragment in problem


# --- the API key ---------------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


JOB_TOML = """
[[jobs]]
name = "n"
list_id = 1
table = "contacts"
[jobs.fields]
email = "email"
"""


def test_environment_key_wins_over_key_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-the-file\n")
    path = write_config(tmp_path, '[selzy]\napi_key_file = "key"\n' + JOB_TOML)
    cfg = load_config(path, environ=ENV)
    assert cfg.selzy.api_key == Secret(KEY)


def test_key_file_is_read_stripped_and_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("  from-the-file\n")
    path = write_config(tmp_path, '[selzy]\napi_key_file = "key"\n' + JOB_TOML)
    cfg = load_config(path, environ={})
    assert cfg.selzy.api_key == Secret("from-the-file")
    assert cfg.selzy.api_key_file == tmp_path / "key"


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[selzy]\napi_key_file = "/nonexistent/key"\n' + JOB_TOML)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [
        "selzy.api_key_file: cannot read /nonexistent/key: No such file or directory"
    ]


def test_empty_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(" \n")
    path = write_config(tmp_path, '[selzy]\napi_key_file = "key"\n' + JOB_TOML)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [f"selzy.api_key_file: {tmp_path / 'key'} is empty"]


@pytest.mark.parametrize("where", ["[selzy]\n", ""])
def test_key_in_the_config_file_is_refused_and_never_echoed(tmp_path: Path, where: str) -> None:
    path = write_config(tmp_path, f'{where}api_key = "PASTED-KEY-123"\n' + JOB_TOML)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=ENV)
    [problem] = info.value.problems
    assert "set $SELZY_API_KEY or selzy.api_key_file" in problem
    assert problem.startswith("selzy.api_key: " if where else "api_key: ")
    assert "PASTED-KEY-123" not in str(info.value)


def test_missing_key_loads_but_is_required_by_commands_that_need_it() -> None:
    cfg = parse_config(minimal(), environ={"SELZY_API_KEY": "  "})
    assert cfg.selzy.api_key is None
    with pytest.raises(ConfigError, match=r"^no API key: set \$SELZY_API_KEY"):
        require_api_key(cfg)
    assert NO_API_KEY == "no API key: set $SELZY_API_KEY or selzy.api_key_file"
    assert require_api_key(parse_config(minimal(), environ=ENV)) == Secret(KEY)


# --- the file ------------------------------------------------------------------------------


def test_path_comes_from_syncd_config_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, JOB_TOML)
    cfg = load_config(environ={"SYNCD_CONFIG": str(path)})
    assert cfg.path == path


def test_missing_file_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Path("/nonexistent/syncd.toml"), environ={})
    assert info.value.problems == [
        "/nonexistent/syncd.toml: cannot read the config file: No such file or directory"
    ]


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[selzy]\ntimeout = 30\nbase_url = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in problem


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[log]\nlevel = "\xff"\n')
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path, environ={})


# --- secrets -------------------------------------------------------------------------------


def test_secret_masks_itself_everywhere() -> None:
    secret = Secret("s3cr3t-value")
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret}"):
        assert "s3cr3t-value" not in shown
    assert secret.reveal() == "s3cr3t-value"


def test_repr_of_the_whole_config_shows_no_secret() -> None:
    cfg: Config = parse_config(minimal(), environ=ENV)
    assert cfg.database.dsn is not None
    for shown in (repr(cfg), str(cfg), repr(cfg.database), repr(cfg.selzy), repr(copy.copy(cfg))):
        assert KEY not in shown
        assert "hunter2-pw" not in shown
