"""One settings class for the whole hub; every value comes from a ``GOVSHARE_...`` variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

PLACEHOLDER_SECRET = "change-me-govshare-placeholder"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVSHARE_", extra="ignore")

    home: Path = Field(default=Path("var"), description="working folder for the embedded default")
    database_url: str = Field(default="", description="registry database; default a SQLite file under home")
    storage: Path = Field(default=Path(""), description="published versions and staging; default home/storage")
    secret_key: str = Field(default=PLACEHOLDER_SECRET, description="signs links, encrypts source credentials")
    demo: bool = Field(default=False, description="demo mode: the placeholder secret is allowed")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    calendar_dir: Path = Field(default=Path(""), description="State Council schedules an operator adds; default home/calendars")
    batch_rows: int = Field(default=65_536, ge=1, description="rows per Arrow record batch read from a source")

    def model_post_init(self, __context: object) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'govshare.db').as_posix()}"
        if str(self.storage) in ("", "."):
            self.storage = self.home / "storage"
        if str(self.calendar_dir) in ("", "."):
            self.calendar_dir = self.home / "calendars"

    def require_secret(self) -> str:
        """The secret key, refused while it is the placeholder (allowed only in demo mode)."""
        if self.secret_key == PLACEHOLDER_SECRET and not self.demo:
            raise ConfigError(
                "GOVSHARE_SECRET_KEY is still the placeholder; set it to a long random value "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`), "
                "or set GOVSHARE_DEMO=1 for a throwaway demo"
            )
        if len(self.secret_key) < 16:
            raise ConfigError("GOVSHARE_SECRET_KEY is shorter than 16 characters; use a long random value")
        return self.secret_key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (after the environment changed, e.g. in tests or the demo)."""
    get_settings.cache_clear()
