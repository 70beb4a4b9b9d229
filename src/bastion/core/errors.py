"""Domain errors. Services raise these; the API, web and CLI each render them in one place.

Each error carries a message key (translated at the edge) and, for invalid input, the list of
field problems: ``FieldProblem(field, reason_key, params, row)``. A refusal therefore always
names the field and the reason, and a batch problem its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from bastion.core.i18n import Language, t


@dataclass(frozen=True)
class FieldProblem:
    """One refused value: which field, why (a message key), and for batches which row."""

    field: str
    reason: str
    params: dict[str, Any] = dc_field(default_factory=dict)
    row: int | None = None

    def render(self, lang: Language = "zh-CN") -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "reason": t(self.reason, lang, **self.params)}
        out["code"] = self.reason
        if self.row is not None:
            out["row"] = self.row
        return out

    def text(self, lang: Language = "zh-CN") -> str:
        prefix = t("error.row_prefix", lang, row=self.row) if self.row is not None else ""
        return f"{prefix}{self.field}: {t(self.reason, lang, **self.params)}"


class BastionError(Exception):
    """Base of every error a user can act on."""

    status = 400
    default_key = "error.bad_request"

    def __init__(
        self,
        key: str | None = None,
        /,
        *,
        problems: list[FieldProblem] | None = None,
        **params: Any,
    ) -> None:
        self.key = key or self.default_key
        self.params = params
        self.problems = problems or []
        super().__init__(self.key)

    def message(self, lang: Language = "zh-CN") -> str:
        return t(self.key, lang, **self.params)

    def __str__(self) -> str:
        base = self.message("en")
        if self.problems:
            base += "; " + "; ".join(p.text("en") for p in self.problems)
        return base


class InvalidInput(BastionError):
    status = 422
    default_key = "error.invalid_input"

    @classmethod
    def one(cls, field_name: str, reason: str, **params: Any) -> InvalidInput:
        """The common case: a single refused field."""
        return cls(problems=[FieldProblem(field_name, reason, params)])


class NotFound(BastionError):
    status = 404
    default_key = "error.not_found"


class Conflict(BastionError):
    status = 409
    default_key = "error.conflict"


class Forbidden(BastionError):
    status = 403
    default_key = "error.forbidden"


class NotAuthenticated(BastionError):
    status = 401
    default_key = "error.not_authenticated"


class InvalidTransition(BastionError):
    status = 409
    default_key = "error.invalid_transition"


class TooLarge(BastionError):
    status = 413
    default_key = "error.too_large"
