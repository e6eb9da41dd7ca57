"""Settings, from the environment (prefix SIYU_) or a `.env` file."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    embedded_worker: bool = Field(default=True, description="run the worker inside `siyu serve`")
    worker_process: bool = Field(
        default=True, description="run that worker as a child process, so callbacks are answered first"
    )
    auto_migrate: bool = Field(default=True, description="apply migrations on start (embedded default)")
    staff_sync_interval_s: int = 6 * 3600
    archive_poll_s: float = Field(default=5.0, description="pull the conversation archive this often")
    archive_lag_s: float = Field(
        default=5.0, description="how far the archive may trail real time; waits count as seen that late"
    )
    session_days: int = 14

    # Voice calls for the last escalation step (siyu.sla.voice), env SIYU_VOICE_*.
    voice_provider: str = Field(default="off", description="off | emulator | tencent")
    voice_emulator_url: str = Field(
        default="", description="the emulator's base URL; empty = the WeCom base URL"
    )
    voice_play_times: int = 2
    voice_tencent_secret_id: str = ""
    voice_tencent_secret_key: str = ""
    voice_tencent_sdk_app_id: str = ""
    voice_tencent_template_id: str = ""
    voice_tencent_region: str = "ap-guangzhou"
    voice_tencent_endpoint: str = "vms.tencentcloudapi.com"
    voice_tencent_scheme: str = "https"  # http only for a local imitation

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'siyu.db').resolve()}"

    def encryption_key(self) -> str:
        """The key that encrypts tenants' secrets. Generated once for the embedded default."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def callback_url(self, tenant_slug: str) -> str:
        return f"{self.public_url.rstrip('/')}/wecom/callback/{tenant_slug}"

    def archive_callback_url(self, tenant_slug: str) -> str:
        """The 会话存档 app's own callback URL (msgaudit_notify), verified with its own pair."""
        return f"{self.callback_url(tenant_slug)}/archive"


@lru_cache
def get_settings() -> Settings:
    return Settings()
