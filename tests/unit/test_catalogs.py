"""Every message key the code uses has a text in both languages, with the same placeholders."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from bastion.core.i18n import catalog

SRC = Path(__file__).resolve().parents[2] / "src" / "bastion"
PREFIXES = (
    "error",
    "field",
    "id",
    "person",
    "user",
    "auth",
    "zone",
    "import",
    "pool",
    "round",
    "site",
    "lab",
    "scan",
    "result",
    "testing",
    "web",
    "role",
    "box",
    "retest",
    "antigen",
    "sim",
    "case",
    "contact",
    "exposure",
    "tracing",
    "isolation",
    "placement",
    "transfer",
    "healthcode",
    "code",
    "bulletin",
    "protocol",
    "override",
    "proxy",
)
KEY_RE = re.compile(r"[\"']((?:" + "|".join(PREFIXES) + r")\.[a-z_]+)[\"']")
# Audit actions, permission names and template names share the dotted shape but are not messages.
NOT_MESSAGES = re.compile(
    r"\.(create|update|unmask|lookup|export|import|designate|lift|close|read|write|manage|report|verify|request|approve|recompute|keys|publish|choose|release|dispatch|arrive|fail|html|rebuild_counters)$"
)


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*SRC.rglob("*.py"), *SRC.rglob("*.html")]:
        for key in KEY_RE.findall(path.read_text(encoding="utf-8")):
            if not NOT_MESSAGES.search(key):
                keys.add(key)
    return keys


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(used_keys()))
def test_every_used_key_is_translated(key):
    assert key in catalog("zh-CN"), f"{key} missing from zh_CN.json"
    assert key in catalog("en"), f"{key} missing from en.json"


def test_both_catalogs_hold_the_same_keys_and_placeholders():
    zh, en = catalog("zh-CN"), catalog("en")
    assert set(zh) == set(en)
    for key in zh:
        assert fields(zh[key]) == fields(en[key]), key


def test_every_role_has_a_name_in_both_languages():
    from bastion.core.auth import ROLES

    for role in ROLES:
        assert f"role.{role}" in catalog("zh-CN")
        assert f"role.{role}" in catalog("en")
