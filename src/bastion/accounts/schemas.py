"""Account schemas."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from bastion.core.text import Line, Name


class UserCreate(BaseModel):
    username: Line
    #: Only hashed, never looked up: any character is the user's own business.
    password: str
    role: Line
    region_code: Line
    #: A person's name (joiners allowed, see core.text.Name), no longer than its column
    #: (PostgreSQL refuses more).
    display_name: Name = Field(default="", max_length=100)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: str
    region_code: str
    active: bool
    created_at: datetime


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
