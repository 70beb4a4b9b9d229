"""Settings, read once from the environment (prefix ``BASTION_``) and an optional ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Placeholder secrets: accepted in development and tests, refused anywhere else.
DEV_SECRET = "dev-only-secret-change-me"  # noqa: S105 - a placeholder that production refuses
DEV_DATA_KEY = "ZGV2LW9ubHktZGF0YS1rZXktY2hhbmdlLW1lLTMyYiE="  # base64 of a 32-byte dev key

Environment = Literal["dev", "test", "production"]


class Settings(BaseSettings):
    """Every tunable of a deployment. Secrets refuse their placeholder outside dev and test."""

    model_config = SettingsConfigDict(env_prefix="BASTION_", env_file=".env", extra="ignore")

    environment: Environment = "dev"
    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path('var/bastion.db').absolute()}",
        description="SQLAlchemy URL; sqlite:///path (default) or postgresql+psycopg://…",
    )
    #: Signs session tokens and cookies.
    secret_key: str = DEV_SECRET
    #: Base64 of 32 random bytes: encrypts ID numbers (AES-GCM) and keys their lookup hash.
    data_key: str = DEV_DATA_KEY
    timezone: str = "Asia/Shanghai"
    default_language: Literal["zh-CN", "en"] = "zh-CN"
    token_ttl_minutes: int = 8 * 60
    #: Argon2 cost; lowered only by the test suite so its cast of users is quick to create.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    #: Largest upload accepted by imports, in bytes.
    max_upload_bytes: int = 64 * 1024 * 1024
    #: Largest number of rows one import file may carry.
    max_import_rows: int = 2_000_000
    #: Protocol profile in force (see DOMAIN.md, "Rules").
    protocol_profile: str = "jilin-2022-03"
    #: A manual health-code request naming more people than this raises a province alarm.
    healthcode_alarm_threshold: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment == "production":
            if self.secret_key == DEV_SECRET:
                raise ValueError("BASTION_SECRET_KEY must be set to a real secret in production")
            if self.data_key == DEV_DATA_KEY:
                raise ValueError("BASTION_DATA_KEY must be set to a real key in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached; tests clear the cache when they change the environment)."""
    return Settings()
