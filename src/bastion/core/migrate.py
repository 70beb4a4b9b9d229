"""Run Alembic migrations from the application (``bastion db upgrade``) and from tests."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config

from bastion.core.config import get_settings


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("bastion.core") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def check(url: str | None = None) -> None:
    """Raise if the models and the migrations disagree (a model change without a migration)."""
    command.check(alembic_config(url))
