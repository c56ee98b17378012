"""syncd's configuration: TOML -> frozen, typed objects, and the Secret type whose repr is masked.

Validation reports every problem at once, each naming its key path. Nothing here touches the
network or the database. The dataclasses (in `model`) are the contract every other module codes
against; import everything from `syncd.config`, not from its modules:

    model      the dataclasses, Secret, defaults and vocabularies
    loader     load_config / parse_config / require_api_key: the file, the sections, the API key
    jobs       the [[jobs]] tables: field mapping, writeback, identifier rules
    schedule   `every N s|m|h` and 5-field cron syntax
    table      one TOML table read with typed getters that collect problems
"""

from syncd.config.jobs import RESERVED_FIELDS
from syncd.config.loader import NO_API_KEY, load_config, parse_config, require_api_key
from syncd.config.model import (
    DEFAULT_BASE_URL,
    DEFAULT_CONFIG_PATH,
    SYSTEM_FIELDS,
    WRITEBACK_KEYS,
    AlertsConfig,
    Config,
    DatabaseConfig,
    DeleteMode,
    JobConfig,
    LogConfig,
    MatchKey,
    MetricsConfig,
    RemoteOnly,
    Schedule,
    Secret,
    SelzyConfig,
    WebhookConfig,
)
from syncd.config.schedule import parse_schedule

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONFIG_PATH",
    "NO_API_KEY",
    "RESERVED_FIELDS",
    "SYSTEM_FIELDS",
    "WRITEBACK_KEYS",
    "AlertsConfig",
    "Config",
    "DatabaseConfig",
    "DeleteMode",
    "JobConfig",
    "LogConfig",
    "MatchKey",
    "MetricsConfig",
    "RemoteOnly",
    "Schedule",
    "Secret",
    "SelzyConfig",
    "WebhookConfig",
    "load_config",
    "parse_config",
    "parse_schedule",
    "require_api_key",
]
