"""A login attempt does the same work whether or not the username exists, so its answer (and
the time it takes) says nothing about which usernames are real."""

from __future__ import annotations

import pytest

from bastion.accounts import service as account_service
from bastion.core.errors import NotAuthenticated
from tests.support.world import PASSWORD


@pytest.fixture
def password_checks(monkeypatch):
    calls: list[str] = []
    real = account_service.verify_password

    def counting(stored_hash: str, password: str) -> bool:
        calls.append(password)
        return real(stored_hash, password)

    monkeypatch.setattr(account_service, "verify_password", counting)
    return calls


@pytest.mark.parametrize(
    ("username", "password"),
    [("ghost", "whatever-1"), ("analyst_in", "wrong-password"), ("ghost", PASSWORD)],
)
def test_every_failed_login_costs_one_password_check(db, password_checks, username, password):
    with pytest.raises(NotAuthenticated):
        account_service.authenticate(db_session=db, username=username, password=password)
    assert password_checks == [password]


def test_a_deactivated_user_is_refused_like_a_wrong_password(db, password_checks):
    user = account_service.get_by_username(db_session=db, username="analyst_in")
    user.active = False
    db.flush()
    with pytest.raises(NotAuthenticated) as caught:
        account_service.authenticate(db_session=db, username="analyst_in", password=PASSWORD)
    assert caught.value.key == "auth.bad_credentials"
    assert password_checks == [PASSWORD]
