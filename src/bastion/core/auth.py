"""Roles, permissions, passwords and the one place permission checks happen.

A user has exactly one role and one region; they may act only on records whose region code lies
in that region's subtree (:class:`bastion.regions.codes.Scope`). Services receive a
:class:`Principal` and call :func:`require` / :meth:`Principal.require_region`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bastion.core.config import get_settings
from bastion.core.errors import Forbidden
from bastion.regions.codes import Scope

ROLES: tuple[str, ...] = (
    "admin",
    "commander",
    "analyst",
    "investigator",
    "sampler",
    "courier",
    "lab",
    "isolation",
    "transfer",
    "grid_worker",
    "hotline",
    "supply",
    "resident",
)


class Perm(StrEnum):
    regions_read = "regions.read"
    zones_write = "zones.write"
    registry_read = "registry.read"
    registry_write = "registry.write"
    registry_import = "registry.import"
    registry_export = "registry.export"
    personal_unmask = "personal.unmask"
    self_read = "self.read"
    users_read = "users.read"
    users_manage = "users.manage"
    audit_read = "audit.read"
    testing_read = "testing.read"
    rounds_manage = "rounds.manage"
    sites_manage = "sites.manage"
    labs_manage = "labs.manage"
    scans_write = "scans.write"
    transport_write = "transport.write"
    results_write = "results.write"
    antigen_report = "antigen.report"
    protocols_manage = "protocols.manage"
    tracing_read = "tracing.read"
    cases_write = "cases.write"
    contacts_write = "contacts.write"
    isolation_read = "isolation.read"
    isolation_write = "isolation.write"
    transfers_write = "transfers.write"
    healthcode_read = "healthcode.read"
    healthcode_request = "healthcode.request"
    healthcode_approve = "healthcode.approve"
    healthcode_recompute = "healthcode.recompute"
    healthcode_keys = "healthcode.keys"
    bulletin_read = "bulletin.read"
    bulletin_publish = "bulletin.publish"


_STAFF_BASE = {Perm.regions_read}
_FIELD = _STAFF_BASE | {Perm.registry_read}

_MANAGE_TESTING = {Perm.testing_read, Perm.rounds_manage, Perm.sites_manage, Perm.labs_manage}
#: What the command centre watches (figures, boards, the bulletin).
_WATCH = {Perm.testing_read, Perm.tracing_read, Perm.isolation_read, Perm.bulletin_read}

ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    "admin": frozenset(Perm) - {Perm.self_read},
    "commander": frozenset(
        _FIELD
        | _MANAGE_TESTING
        | _WATCH
        | {
            Perm.zones_write,
            Perm.registry_export,
            Perm.audit_read,
            Perm.users_read,
            Perm.healthcode_read,
            Perm.healthcode_request,
            Perm.healthcode_approve,
            Perm.healthcode_recompute,
            Perm.bulletin_publish,
        }
    ),
    "analyst": frozenset(_FIELD | _WATCH | {Perm.registry_export, Perm.bulletin_publish}),
    "investigator": frozenset(
        _FIELD
        | {
            Perm.registry_write,
            Perm.personal_unmask,
            Perm.testing_read,
            Perm.tracing_read,
            Perm.cases_write,
            Perm.contacts_write,
            Perm.isolation_read,
            Perm.healthcode_read,
            Perm.healthcode_request,
        }
    ),
    "sampler": frozenset(_FIELD | {Perm.testing_read, Perm.scans_write, Perm.transport_write}),
    "courier": frozenset(_STAFF_BASE | {Perm.testing_read, Perm.transport_write}),
    "lab": frozenset(_STAFF_BASE | {Perm.testing_read, Perm.transport_write, Perm.results_write}),
    "isolation": frozenset(
        _FIELD
        | {
            Perm.personal_unmask,
            Perm.tracing_read,
            Perm.isolation_read,
            Perm.isolation_write,
            Perm.healthcode_read,
        }
    ),
    "transfer": frozenset(
        _FIELD | {Perm.personal_unmask, Perm.isolation_read, Perm.transfers_write}
    ),
    "grid_worker": frozenset(
        _FIELD
        | {
            Perm.registry_write,
            Perm.registry_import,
            Perm.personal_unmask,
            Perm.testing_read,
            Perm.antigen_report,
            Perm.isolation_read,
            Perm.healthcode_read,
        }
    ),
    "hotline": frozenset(_FIELD | {Perm.healthcode_read}),
    "supply": frozenset(_FIELD),
    "resident": frozenset({Perm.self_read, Perm.antigen_report}),
}


@dataclass(frozen=True)
class Principal:
    """Who is acting: the user, their role and the subtree they may see."""

    user_id: int | None
    username: str
    role: str
    region_code: str
    scope: Scope
    person_id: int | None = None
    #: The codes from the province down to the user's own region (rounds and zones declared
    #: above a user still concern them).
    ancestors: tuple[str, ...] = ()

    def can(self, perm: Perm) -> bool:
        return perm in ROLE_PERMISSIONS.get(self.role, frozenset())

    def require(self, perm: Perm) -> None:
        if not self.can(perm):
            raise Forbidden("error.permission_missing", permission=perm.value, role=self.role)

    def require_region(self, region_code: str) -> None:
        """Refuse a record outside the user's subtree."""
        if not self.scope.contains(region_code):
            raise Forbidden("error.region_outside", region=region_code)


def system_principal() -> Principal:
    """The CLI and jobs act as the system: every permission, the whole tree."""
    return Principal(
        user_id=None, username="system", role="admin", region_code="", scope=Scope.everything()
    )


@lru_cache(maxsize=2)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def hash_password(password: str) -> str:
    s = get_settings()
    return _hasher(s.argon2_time_cost, s.argon2_memory_kib).hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    s = get_settings()
    try:
        return _hasher(s.argon2_time_cost, s.argon2_memory_kib).verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
