"""Settings, from the environment (prefix SIYU_) or a `.env` file."""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long Siyu waits on PostgreSQL, in seconds; 0 = no limit (Settings' database_*)."""

    connect_s: float = 10.0
    dead_peer_s: float = 20.0
    statement_s: float = 60.0
    idle_in_transaction_s: float = 120.0

    def unhurried(self, migrating: bool = False) -> DatabaseTimeouts:
        """For a command a person runs (a sync, an import): its statements may take their time.
        For a migration also the pauses between them (Python run mid-migration)."""
        idle = 0.0 if migrating else self.idle_in_transaction_s
        return replace(self, statement_s=0.0, idle_in_transaction_s=idle)


_TIMEOUTS = DatabaseTimeouts()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="where the SQLite file and the key live")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite file in data_dir")
    public_url: str = Field(default="http://127.0.0.1:8000", description="the address WeCom can reach")
    secret_key: str = Field(default="", description="encrypts secrets at rest; empty = key file in data_dir")
    wecom_base_url: str = "https://qyapi.weixin.qq.com"
    wecom_oauth_url: str = "https://open.weixin.qq.com"
    wecom_login_url: str = "https://login.work.weixin.qq.com"
    wecom_rate_limit_pause_s: float = Field(
        default=1.0, description="first rest of an endpoint after WeCom's 45009; doubles while it lasts"
    )
    wecom_timeout_s: float = Field(
        default=10.0, description="how long a WeCom call waits to connect, and for each read of its answer"
    )
    embedded_worker: bool = Field(default=True, description="run the worker inside `siyu serve`")
    worker_process: bool = Field(
        default=True, description="run that worker as a child process, so callbacks are answered first"
    )
    auto_migrate: bool = Field(default=True, description="apply migrations on start (embedded default)")
    # PostgreSQL only: without these a server gone without a word (host powered off, network
    # cut) left a worker loop or a request waiting on its socket forever, and a stuck
    # statement held its locks as long.
    database_connect_timeout_s: float = Field(
        default=_TIMEOUTS.connect_s, description="opening a connection to PostgreSQL fails after this long"
    )
    database_dead_peer_s: float = Field(
        default=_TIMEOUTS.dead_peer_s,
        description="a PostgreSQL server that answers nothing at all, not even TCP (host gone, network "
        "cut), is given up after this long (TCP keepalives and tcp_user_timeout)",
    )
    database_statement_timeout_s: float = Field(
        default=_TIMEOUTS.statement_s,
        description="PostgreSQL cancels a statement of the server or worker running longer, and "
        "its locks go; a query with no answer at all this plus database_dead_peer_s fails (a proxy "
        "that stays up while the server behind it is gone). Commands a person runs (sync, import, "
        "migrate) have no limit",
    )
    database_idle_in_transaction_s: float = Field(
        default=_TIMEOUTS.idle_in_transaction_s,
        description="PostgreSQL ends a session idle this long inside a transaction (its locks go); "
        "migrations have no limit",
    )
    staff_sync_interval_s: int = 6 * 3600
    archive_poll_s: float = Field(default=5.0, description="pull the conversation archive this often")
    archive_lag_s: float = Field(
        default=5.0, description="how far the archive may trail real time; waits count as seen that late"
    )
    session_days: int = 14
    work_lease_s: float = Field(
        default=60.0,
        description="a callback event being handled, or a card or call being sent, stays its "
        "worker's this long past its last renewal (every third of it): a worker that dies leaves "
        "it to others that late",
    )

    # Voice calls for the last escalation step (siyu.sla.voice), env SIYU_VOICE_*.
    voice_provider: str = Field(default="off", description="off | emulator | tencent")
    voice_emulator_url: str = Field(
        default="", description="the emulator's base URL; empty = the WeCom base URL"
    )
    voice_play_times: int = 2
    # how long a call waits for the provider's answer; one that times out may have rung, and is
    # not placed again (siyu.sla.voice.NoAnswer)
    voice_timeout_s: float = Field(default=15.0, gt=0, le=120)
    voice_tencent_secret_id: str = ""
    voice_tencent_secret_key: str = ""
    voice_tencent_sdk_app_id: str = ""
    voice_tencent_template_id: str = ""
    voice_tencent_region: str = "ap-guangzhou"
    voice_tencent_endpoint: str = "vms.tencentcloudapi.com"
    voice_tencent_scheme: str = "https"  # http only for a local imitation

    @field_validator("public_url")
    @classmethod
    def _public_url_has_a_scheme(cls, value: str) -> str:
        # without one, every callback and OAuth URL Siyu prints would be unusable
        if not value.startswith(("https://", "http://")) or not urlsplit(value).hostname:
            raise ValueError(
                f"SIYU_PUBLIC_URL must be an address like https://scrm.example.com, not {value!r}"
            )
        return value

    @field_validator(
        "database_connect_timeout_s",
        "database_dead_peer_s",
        "database_statement_timeout_s",
        "database_idle_in_transaction_s",
    )
    @classmethod
    def _seconds_or_none(cls, value: float, info) -> float:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"SIYU_{info.field_name.upper()} must be seconds (0 = no limit), not {value}")
        return value

    @property
    def database_timeouts(self) -> DatabaseTimeouts:
        return DatabaseTimeouts(
            connect_s=self.database_connect_timeout_s,
            dead_peer_s=self.database_dead_peer_s,
            statement_s=self.database_statement_timeout_s,
            idle_in_transaction_s=self.database_idle_in_transaction_s,
        )

    @property
    def work_lease(self) -> timedelta:
        return timedelta(seconds=self.work_lease_s)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        self._make_data_dir()
        return f"sqlite:///{(self.data_dir / 'siyu.db').resolve()}"

    def _make_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # (a file of that name, no right to make it): one line, not a traceback
            raise ValueError(
                f"SIYU_DATA_DIR {self.data_dir} cannot be used as a folder: {exc.strerror}"
            ) from None

    @property
    def key_file(self) -> Path:
        """Where the generated key lives when SIYU_SECRET_KEY is unset."""
        return self.data_dir / "secret.key"

    def encryption_key(self) -> str:
        """The key that encrypts tenants' secrets. Generated once for the embedded default."""
        if self.secret_key:
            return self.secret_key
        path = self.key_file
        if not path.exists():
            self._make_data_dir()
            # written whole under another name, then linked in place: a process starting beside
            # this one (the server and its worker) reads the key or no file, never an empty one,
            # and the first key made is the one kept
            made = path.with_name(f".{path.name}.{os.getpid()}")
            made.write_text(secrets.token_urlsafe(32))
            made.chmod(0o600)
            try:
                os.link(made, path)
            except FileExistsError:
                pass
            finally:
                made.unlink()
        key = path.read_text().strip()
        if not key:  # (a full disk when it was written, a touch): secrets sealed with "" open for anyone
            raise ValueError(
                f"{path} is empty: restore the key file, or remove it to make a new one if no tenant is"
                " connected yet (their secrets were sealed with the old key)"
            )
        return key

    def callback_url(self, tenant_slug: str) -> str:
        return f"{self.public_url.rstrip('/')}/wecom/callback/{tenant_slug}"

    def archive_callback_url(self, tenant_slug: str) -> str:
        """The 会话存档 app's own callback URL (msgaudit_notify), verified with its own pair."""
        return f"{self.callback_url(tenant_slug)}/archive"

    def public_url_warning(self) -> str:
        """Why WeCom could not call back at `public_url`, when it plainly cannot: the address is
        this machine's or a private network's while WeCom is not (the emulator beside Siyu
        can). "" otherwise."""
        if _local(self.wecom_base_url) or not _local(self.public_url):
            return ""
        return (
            f"SIYU_PUBLIC_URL 是 {self.public_url}，企业微信的服务器访问不到这个地址，回调会失败："
            "请设为本服务对外的地址（如 https://scrm.example.com） / "
            f"SIYU_PUBLIC_URL is {self.public_url}, which WeCom's servers cannot reach: "
            "set it to this server's public address"
        )


def _local(url: str) -> bool:
    """Whether the URL's host is this machine, a private network's or no host at all."""
    host = (urlsplit(url).hostname or "").lower()
    if not host or host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a bare machine name
    return not ip.is_global


@lru_cache
def get_settings() -> Settings:
    return Settings()
