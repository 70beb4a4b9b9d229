"""Exporting a region's persons as CSV: scoped, masked by default, audited, formula-safe."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from bastion.core.auth import Principal
from bastion.regions import service as region_service
from bastion.registry import service as registry_service
from tests.integration.registry.people import (
    audit_entries,
    new_id_number,
    register,
    register_outside,
)
from tests.support.world import MEIHEKOU_GRID, NANGUAN_GRID_2

EXPORT = "/api/v1/persons/export/{}.csv"


def rows_of(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


def test_an_export_holds_only_the_region_asked_for_masked_and_is_audited(client, headers, db):
    number = new_id_number(born=date(1985, 6, 15))
    register(db, name="王芳", id_number=number, phone="13812345678", household="H-9")
    register(db, name="李四", region_code=NANGUAN_GRID_2)
    register_outside(db, name="赵六")
    response = client.get(EXPORT.format("220100"), headers=headers("analyst"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="persons-220100.csv"' in response.headers["content-disposition"]
    rows = rows_of(response)
    assert sorted(r["name"] for r in rows) == ["李*", "王*"]
    wang = next(r for r in rows if r["name"] == "王*")
    assert wang["id_number"] == number[0] + "*" * 16 + number[-1]
    assert wang["phone"] == "138****5678"
    assert wang["birth_date"] == "1985"
    assert wang["household"] == "H-9"
    assert number not in response.text
    assert "赵" not in response.text
    entries = audit_entries(db, "registry.export")
    assert len(entries) == 1
    assert entries[0].actor == "analyst_in"
    assert json.loads(entries[0].details) == {"rows": 2, "unmasked": False}


def test_an_export_of_a_smaller_region_holds_only_that_region(client, headers, db):
    register(db, name="王芳")
    register(db, name="李四", region_code=NANGUAN_GRID_2)
    response = client.get(EXPORT.format(NANGUAN_GRID_2), headers=headers("commander"))
    assert [r["name"] for r in rows_of(response)] == ["李*"]


def test_an_unmasked_export_needs_the_unmask_permission(client, headers, db):
    number = new_id_number()
    register(db, name="王芳", id_number=number)
    refused = client.get(EXPORT.format("220100") + "?unmask=true", headers=headers("analyst"))
    assert refused.status_code == 403
    assert number not in refused.text
    assert audit_entries(db, "registry.export") == []
    allowed = client.get(EXPORT.format("220100") + "?unmask=true", headers=headers("admin"))
    assert allowed.status_code == 200
    assert rows_of(allowed)[0]["id_number"] == number
    assert rows_of(allowed)[0]["name"] == "王芳"
    assert json.loads(audit_entries(db, "registry.export")[0].details)["unmasked"] is True


def test_an_export_outside_the_users_region_is_refused_and_not_audited(client, headers, db):
    register_outside(db)
    response = client.get(EXPORT.format("220200"), headers=headers("analyst"))
    assert response.status_code == 403
    assert audit_entries(db, "registry.export") == []


def test_an_export_needs_the_export_permission(client, headers, db):
    assert client.get(EXPORT.format("220100"), headers=headers("sampler")).status_code == 403
    assert audit_entries(db, "registry.export") == []


def test_a_control_character_in_the_region_is_refused_naming_it_and_not_audited(
    client, headers, db
):
    response = client.get(EXPORT.format("220100%00"), headers=headers("analyst"))
    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        ("region_code", "field.control_chars")
    ]
    assert audit_entries(db, "registry.export") == []


@pytest.mark.parametrize(
    "dangerous",
    ['=HYPERLINK("http://x.example","点我")', "+SUM(1,2)", "-2+3", "@cmd", "=1+1"],
)
def test_spreadsheet_formulas_in_names_and_addresses_are_neutralised(
    client, headers, db, dangerous
):
    register(db, name=dangerous, address=dangerous, household=dangerous)
    for unmask in ("false", "true"):
        response = client.get(
            EXPORT.format("220100") + f"?unmask={unmask}", headers=headers("admin")
        )
        row = rows_of(response)[0]
        for column in ("name", "address", "household"):
            assert row[column].startswith("'"), (unmask, column, row[column])
        if unmask == "true":
            assert row["name"] == "'" + dangerous


def test_a_tonghua_export_leaves_out_meihekou_which_the_province_runs(db):
    register(db, name="梅河口人", region_code=MEIHEKOU_GRID)
    tonghua = Principal(
        user_id=None,
        username="tonghua_commander",
        role="commander",
        region_code="220500",
        scope=region_service.scope_of(db_session=db, code="220500"),
    )
    plan = registry_service.export_csv(db_session=db, principal=tonghua, region_code="220500")
    text = "".join(registry_service.export_lines(db_session=db, plan=plan))
    assert plan.rows == 0
    assert "梅" not in text
    province = Principal(
        user_id=None,
        username="province_commander",
        role="commander",
        region_code="220000",
        scope=region_service.scope_of(db_session=db, code="220000"),
    )
    plan = registry_service.export_csv(db_session=db, principal=province, region_code="220581")
    assert plan.rows == 1
