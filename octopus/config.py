"""Settings for each kind of process: flag > environment (OCTOPUS_*) > octopus.toml > default."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from octopus.errors import ConfigError

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
CONFIG_FILE_ENV = "OCTOPUS_CONFIG"
DEFAULT_CONFIG_FILE = "octopus.toml"


class _TableSource(TomlConfigSettingsSource):
    """Reads one table (``[server]``, ``[agent]``, ``[client]``) of ``octopus.toml``."""

    def __init__(self, settings_cls: type[BaseSettings], table: str) -> None:
        path = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        super().__init__(settings_cls, toml_file=path)
        section = self.toml_data.get(table, {})
        self.toml_data = section if isinstance(section, dict) else {}
        self.init_kwargs = self.toml_data


class OctopusSettings(BaseSettings):
    """Shared behaviour: the OCTOPUS_ prefix, the TOML table, and one-line errors."""

    toml_table: ClassVar[str] = ""
    model_config = SettingsConfigDict(env_prefix="OCTOPUS_", extra="ignore", validate_default=True)

    log_level: LogLevel = "INFO"
    log_file: Path | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TableSource(settings_cls, cls.toml_table))

    @classmethod
    def load(cls, **flags: Any) -> Any:
        """Build settings from flags (None means "not given") over env, file and defaults.

        Raises ConfigError with one line naming the variable and the problem.
        """
        given = {key: value for key, value in flags.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "?"
            source = "flag" if field in given else "OCTOPUS_" + field.upper()
            raise ConfigError(f"{source}: {first['msg']}") from None
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None


class ServerSettings(OctopusSettings):
    """Settings of ``octopus server``."""

    toml_table = "server"

    server_host: str = "0.0.0.0"
    server_port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path("./octopus-data")
    database_url: str | None = None
    plugins_dir: Path = Path("./plugins")
    admin_token: str | None = Field(default=None, min_length=16)
    join_token: str | None = Field(default=None, min_length=16)
    heartbeat_interval: float = Field(default=10.0, gt=0, le=3600)
    client_timeout: float = Field(default=30.0, gt=0, le=86400)
    plugin_scan_seconds: float = Field(default=2.0, gt=0, le=3600)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    local_agents: int = Field(default=0, ge=0, le=64)
    retention_days: int = Field(default=30, ge=0, le=36500)
    """Finished history older than this many days is pruned; 0 keeps everything."""
    retention_max_runs_per_task: int | None = Field(default=None, ge=1, le=1_000_000)
    """A repeating task keeps at most this many finished runs; None keeps them all."""

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'octopus.db').resolve()}"


class AgentSettings(OctopusSettings):
    """Settings of ``octopus agent``."""

    toml_table = "agent"

    server_url: str = "http://localhost:8000"
    agent_name: str = Field(default_factory=socket.gethostname)
    join_token: str | None = None
    labels: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    concurrency: int = Field(default=2, ge=1, le=256)
    prefetch: int = Field(default=256, ge=0, le=512)
    """The most executions held beyond ``concurrency`` while recent ones were quick; 0 off."""
    state_dir: Path = Path("./agent-state")
    heartbeat_interval: float = Field(default=10.0, gt=0, le=3600)
    allow_shell: bool = False

    @field_validator("labels", mode="before")
    @classmethod
    def _parse_labels(cls, value: Any) -> Any:
        return parse_labels(value) if isinstance(value, str) else value


class ClientSettings(OctopusSettings):
    """Settings of the CLI commands that talk to a server."""

    toml_table = "client"

    server_url: str = "http://localhost:8000"
    admin_token: str | None = None


def parse_labels(text: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2`` into a dict; raise ValueError naming the bad pair."""
    labels: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"label '{pair}' is not key=value")
        labels[key.strip()] = value.strip()
    return labels
