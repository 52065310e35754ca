"""Settings, read from the environment (prefix ``KIOSK_``) and validated at start.

``KIOSK_HOME``          data folder (SQLite database, FAISS index, logs)
``KIOSK_DATABASE_URL``  SQLAlchemy URL; default SQLite in KIOSK_HOME
``KIOSK_MODEL_DIR``     where model packs are installed
``KIOSK_BACKEND``       ``sface`` (default) or ``insightface``
``KIOSK_MATCH_THRESHOLD`` / ``KIOSK_MATCH_MARGIN``  override the backend's calibrated values
``KIOSK_TEMPLATE_KEY`` / ``KIOSK_TEMPLATE_KEY_FILE``  key that encrypts face templates
``KIOSK_AUDIO``         ``on`` (default) or ``off``: the counter's voice
``KIOSK_CONSOLE_IDLE_MINUTES``  the district console's idle sign-out (default 30)
``KIOSK_SERVER_URL``    a terminal's district server; several as a comma list (failover)
``KIOSK_BACKUP_PASSPHRASE``  the passphrase of `kiosk backup` / `kiosk restore` in scripts
``KIOSK_PUSH_MAX_BYTES`` the district server's largest push body (default 4 MB; 413 above)
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kiosk.errors import ConfigError

APP_NAME = "changshou-kiosk"


def default_home() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def default_model_dir() -> Path:
    # Outside KIOSK_HOME so that a demo or test home does not re-download models.
    return Path(platformdirs.user_data_dir(APP_NAME)) / "models"


def default_key_file() -> Path:
    # Outside the data folder on purpose: a copied data folder alone cannot be read.
    return Path(platformdirs.user_config_dir(APP_NAME)) / "template.key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KIOSK_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    database_url: str | None = None
    model_dir: Path = Field(default_factory=default_model_dir)
    backend: Literal["sface", "insightface"] = "sface"
    match_threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    match_margin: float | None = Field(default=None, ge=0.0, le=2.0)
    template_key: str | None = None
    template_key_file: Path = Field(default_factory=default_key_file)
    canteen_id: str = "default"
    canteen_name: str = "长寿食堂"
    # frames that must agree before a tracked face is taken as a person
    votes_needed: int = Field(default=3, ge=1, le=30)
    vote_window: int = Field(default=6, ge=1, le=60)
    max_templates_per_resident: int = Field(default=8, ge=1, le=50)
    # liveness before a face checkout: active head-turn challenge (default), a passive
    # ONNX model in the model folder, or off
    liveness: Literal["active", "passive", "off"] = "active"
    liveness_model: Path | None = None
    liveness_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    # the district (docs/district.md): with both set this machine is a terminal of that
    # server, selling from a local replica and syncing every sync_interval_s seconds
    server_url: str | None = None
    server_token: str | None = None
    sync_interval_s: float = Field(default=5.0, ge=0.5, le=3600)
    # the counter's voice and chimes (KIOSK_AUDIO=off keeps them silent: servers, tests)
    audio: bool = True
    # the district console signs a login out after this many idle minutes
    console_idle_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    # `kiosk server` computes this and last month's console pages ahead, in a background
    # thread of each process, so a clerk's first view answers at once (kiosk.district.console.warm)
    console_warm: bool = True
    # how `kiosk server` serves, set from its flags (--ssl-certfile/--ssl-keyfile,
    # --insecure-templates) and handed to every worker process with the settings
    serve_tls: bool = False
    serve_insecure_templates: bool = False
    # `kiosk backup` / `kiosk restore` (docs/operations.md): the passphrase that encrypts
    # the template key in the archive; asked at the prompt when unset
    backup_passphrase: SecretStr | None = None
    # the district server: the largest push body it reads (bytes); a larger one gets 413 unread
    push_max_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=1024 ** 3)

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError("must be an SQLAlchemy URL such as postgresql+psycopg://user@host/db")
        return v

    @field_validator("server_url")
    @classmethod
    def _check_server_url(cls, v: str | None) -> str | None:
        # one URL, or several separated by commas (servers over one database: the terminal
        # syncs through the first that answers and moves on when it stops answering)
        if v is None:
            return None
        urls = [u.strip().rstrip("/") for u in v.split(",") if u.strip()]
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"{u!r}: each URL must start with https:// (or http:// on the same machine)")
        if len(set(urls)) != len(urls):
            raise ValueError("the same URL is given twice")
        return ",".join(urls) or None

    @model_validator(mode="after")
    def _terminal_canteen(self) -> "Settings":
        # a terminal learns its canteen from its token at the first `kiosk sync` (kept in
        # KIOSK_HOME/terminal.json); KIOSK_CANTEEN_ID, when set, must agree (sync checks)
        if self.is_terminal and "canteen_id" not in self.model_fields_set:
            f = self.home / "terminal.json"
            if f.is_file():
                try:
                    self.canteen_id = str(json.loads(f.read_text())["canteen_id"])
                except (OSError, ValueError, KeyError):
                    pass
        return self

    @property
    def is_terminal(self) -> bool:
        """A terminal of a district server (KIOSK_SERVER_URL and KIOSK_SERVER_TOKEN set)."""
        return bool(self.server_url and self.server_token)

    @property
    def server_urls(self) -> list[str]:
        """The district server's URLs in the order a terminal tries them."""
        return self.server_url.split(",") if self.server_url else []

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'kiosk.db'}"

    @property
    def index_path(self) -> Path:
        return self.home / "gallery.faiss.enc"

def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            name = "KIOSK_" + "_".join(str(p) for p in err["loc"]).upper()
            parts.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("配置有误：" + "；".join(parts), detail="; ".join(parts)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
