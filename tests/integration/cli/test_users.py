"""``bastion users create``: works, and every refusal is one clear line naming the field."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bastion.accounts import service as account_service
from bastion.accounts.models import User
from tests.integration.cli.conftest import flat


def create(bastion, **options: str):
    args = ["users", "create"]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", value]
    return bastion(*args)


def users_in(cli_db) -> int:
    cli_db.expire_all()
    return cli_db.execute(select(func.count()).select_from(User)).scalar_one()


def test_it_creates_a_user_who_can_then_log_in(bastion, cli_db):
    result = create(
        bastion, username="li.lei", role="grid_worker", region="220102", password="s3cret-pass"
    )
    assert result.exit_code == 0, result.output
    assert "created user li.lei (grid_worker) in 220102" in flat(result.stdout)
    user = account_service.authenticate(
        db_session=cli_db, username="li.lei", password="s3cret-pass"
    )
    assert (user.role, user.region_code, user.active) == ("grid_worker", "220102", True)
    assert "s3cret-pass" not in user.password_hash


def test_it_asks_for_the_password_when_not_given(bastion, cli_db):
    result = bastion(
        "users",
        "create",
        "--username",
        "han.mei",
        "--role",
        "analyst",
        "--region",
        "220100",
        input="long-enough-1\nlong-enough-1\n",
    )
    assert result.exit_code == 0, result.output
    assert account_service.authenticate(
        db_session=cli_db, username="han.mei", password="long-enough-1"
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"role": "emperor"}, "role: unknown role 'emperor'"),
        ({"region": "229999"}, "region_code: There is no region with code 229999"),
        ({"region": "not-a-code"}, "region_code: There is no region with code not-a-code"),
        ({"password": "short"}, "password: a password has at least 8 characters"),
        ({"username": "x"}, "username: a username is 3–64 letters, digits or _ . -"),
        ({"username": "has space"}, "username: a username is 3–64 letters"),
    ],
)
def test_a_bad_value_exits_1_naming_the_field(bastion, cli_db, options, expected):
    values = {"username": "wang.wu", "role": "sampler", "region": "220100", "password": "ok-pass-1"}
    result = create(bastion, **(values | options))
    assert result.exit_code == 1
    assert expected in flat(result.stderr)
    assert result.stdout == ""
    assert users_in(cli_db) == 0


def test_every_bad_value_is_reported_at_once(bastion, cli_db):
    result = create(bastion, username="x", role="emperor", region="229999", password="short")
    assert result.exit_code == 1
    errors = flat(result.stderr)
    for field in ("username:", "role:", "region_code:", "password:"):
        assert field in errors
    assert users_in(cli_db) == 0


def test_a_taken_username_exits_1(bastion, cli_db):
    values = {
        "username": "zhao.liu",
        "role": "sampler",
        "region": "220100",
        "password": "ok-pass-1",
    }
    assert create(bastion, **values).exit_code == 0
    again = create(bastion, **(values | {"role": "admin"}))
    assert again.exit_code == 1
    assert "The username 'zhao.liu' is taken." in flat(again.stderr)
    assert users_in(cli_db) == 1
    cli_db.expire_all()
    assert cli_db.execute(select(User.role)).scalar_one() == "sampler"
