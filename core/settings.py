"""One settings class for the whole hub; every value comes from a ``GOVSHARE_...`` variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

PLACEHOLDER_SECRET = "change-me-govshare-placeholder"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVSHARE_", extra="ignore")

    home: Path = Field(default=Path("var"), description="working folder for the embedded default")
    database_url: str = Field(default="", description="registry database; default a SQLite file under home")
    storage: str = Field(default="", description="where versions, runs, quarantine files, reports and exports live: "
                         "a folder (default home/storage) or an S3-compatible store, s3://bucket/prefix")
    storage_endpoint: str = Field(default="", description="the object store's URL, e.g. http://127.0.0.1:9000 "
                                  "(default: AWS's for the region)")
    storage_access_key: str = Field(default="", description="object store access key (default: the AWS chain)")
    storage_secret_key: SecretStr = Field(default=SecretStr(""), description="object store secret key")
    storage_region: str = Field(default="us-east-1", description="object store region")
    storage_cache: Path = Field(default=Path(""), description="this worker's working copy of an object store; "
                                "default home/objects (unused for a local folder)")
    secret_key: SecretStr = Field(default=SecretStr(PLACEHOLDER_SECRET), description="every key the hub derives "
                                  "(core/keys.py): signed links, stored credentials, audit seals, offline packages")
    demo: bool = Field(default=False, description="demo mode: the placeholder secret is allowed")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    calendar_dir: Path = Field(default=Path(""), description="State Council schedules an operator adds; default home/calendars")
    audit_anchor_dir: Path = Field(default=Path(""), description="where `audit anchor` and the daily DAG write the "
                                   "audit chain's head; keep it off the database host; default home/audit-anchors")
    batch_rows: int = Field(default=65_536, ge=1, description="rows per Arrow record batch read from a source")
    csv_max_field_chars: int = Field(default=16 * 1024 * 1024, ge=1024, le=1 << 28, description="the longest "
                                     "CSV line, and field over several lines, a file source reads (characters); "
                                     "past it the line is quarantined: a quote never closed stops there, and "
                                     "memory stays bounded (about 8 bytes a character)")
    full_refresh_days: float = Field(default=7, ge=0, description="an incremental resource is read in full again "
                                     "(deletes detected; a change-capture one takes a fresh snapshot) once its "
                                     "last full read is this old; 0: never")
    cdc_slot_prefix: str = Field(default="govshare", pattern=r"^[a-z][a-z0-9_]{0,30}$",
                                 description="prefix of change-capture slot and publication names")
    cdc_max_retained_mb: int = Field(default=1024, ge=1, description="WAL a change-capture slot may hold back "
                                     "before the guard drops it and marks the resource for a full re-read")
    cdc_max_lag_minutes: int = Field(default=0, ge=0, description="drop a slot not confirmed for this long (0: off)")
    cdc_max_changes: int = Field(default=100_000, ge=1, description="changes one change-capture run applies at most")
    cdc_wait_seconds: float = Field(default=30.0, gt=0, description="how long a run waits to catch up with the source")
    rate_limit_rps: float = Field(default=50.0, ge=0, description="requests per second per consumer credential (0: off)")
    rate_limit_burst: int = Field(default=100, ge=1, description="requests a consumer may send at once")
    redis_url: str = Field(default="", description="Redis (redis://host:6379/1) where every API process and "
                           "replica counts rate limits together; empty: each process counts its own")
    signed_link_seconds: int = Field(default=3600, ge=1, description="default lifetime of a signed download link")
    package_days: float = Field(default=30, gt=0, description="an offline package is refused on import this many "
                                "days after it was made (an expiry signed into it)")
    decision_cache_seconds: float = Field(default=1.0, ge=0, description="interface lookups reuse an access decision this long (0: off)")
    pdf_font: Path | None = Field(default=None, description="TrueType (.ttf/.ttc) CJK font embedded in PDFs; "
                                  "default: the first of the Debian fonts schemas/pdf_font.py lists that is installed")

    def model_post_init(self, __context: object) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'govshare.db').as_posix()}"
        if self.storage in ("", "."):
            self.storage = str(self.home / "storage")
        if str(self.storage_cache) in ("", "."):
            self.storage_cache = self.home / "objects"
        if str(self.calendar_dir) in ("", "."):
            self.calendar_dir = self.home / "calendars"
        if str(self.audit_anchor_dir) in ("", "."):
            self.audit_anchor_dir = self.home / "audit-anchors"

    def require_secret(self) -> str:
        """The secret key, refused while it is the placeholder (allowed only in demo mode). Only core/keys.py
        derives keys from it."""
        secret = self.secret_key.get_secret_value()
        if secret == PLACEHOLDER_SECRET and not self.demo:
            raise ConfigError(
                "密钥仍是占位值，请设置环境变量 GOVSHARE_SECRET_KEY 为足够长的随机值 / "
                "GOVSHARE_SECRET_KEY is still the placeholder; set it to a long random value "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`), "
                "or set GOVSHARE_DEMO=1 for a throwaway demo"
            )
        if len(secret) < 16:
            raise ConfigError("密钥 GOVSHARE_SECRET_KEY 少于16个字符，请使用足够长的随机值 / "
                              "GOVSHARE_SECRET_KEY is shorter than 16 characters; use a long random value")
        return secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (after the environment changed, e.g. in tests or the demo)."""
    get_settings.cache_clear()
    from core.storage import forget_storages

    forget_storages()
