"""The day's figures on a hand-built scenario, number by number, and the texts in both
languages."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bastion.bulletin import service as bulletin_service
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Forbidden, InvalidInput
from tests.integration.bulletin import scenario
from tests.integration.bulletin.scenario import CHANGCHUN, JILIN, SHANGHAI, D

SYSTEM = system_principal()


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(scenario.NOW):
        yield


def figures(db, region="220000", day=D):
    got = bulletin_service.get(db_session=db, principal=SYSTEM, day=day, region_code=region)
    return got.figures.sections


def text(db, lang, region="220000", day=D):
    return bulletin_service.render(
        db_session=db, principal=SYSTEM, day=day, lang=lang, fmt="md", region_code=region
    )


def cities(rows):
    return [(r["code"], r["count"]) for r in rows]


def test_the_province_figures_are_those_of_the_scenario(db):
    scenario.build(db)
    s = figures(db)
    cases = s["cases"]
    assert cases["confirmed"] == 10
    assert cases["by_type"] == {"mild": 8, "ordinary": 2}
    assert cities(cases["confirmed_by_city"]) == [("220200", 6), ("220100", 4)]
    assert cases["reclassified"] == 1
    assert cases["asymptomatic"] == 4
    assert cities(cases["asymptomatic_by_city"]) == [("220200", 2), ("220100", 1), ("220581", 1)]
    rec = s["recoveries"]
    assert (rec["day"], rec["discharged"], rec["released"], rec["cumulative"]) == (2, 1, 1, 3)
    assert cities(rec["by_city"]) == [("220100", 1), ("220200", 1)]
    assert s["contacts"] == {
        "close": 3,
        "close_released": 1,
        "secondary": 1,
        "secondary_released": 0,
    }
    assert s["isolation"] == {"total": 3, "centralised": 2, "home": 1}
    assert s["screening"] == {"screened": 0, "cumulative": 0}
    assert s["rounds"] == {"rounds": []}


def test_a_reclassified_case_is_counted_once_as_asymptomatic_then_once_as_confirmed(db):
    scenario.build(db)
    two_days_before = figures(db, day=D - timedelta(days=2))["cases"]
    assert two_days_before["asymptomatic"] == 1
    assert two_days_before["confirmed"] == 0
    on_d = figures(db, region="220200")["cases"]
    assert on_d["confirmed"] == 6
    assert on_d["reclassified"] == 1
    # Never again as a new asymptomatic infection: Jilin City's 2 are the two reported on D.
    assert on_d["asymptomatic"] == 2


def test_a_case_is_counted_by_the_city_that_reports_it_not_where_it_lives(db):
    scenario.build(db)
    changchun = figures(db, region="220100")["cases"]
    jilin = figures(db, region="220200")["cases"]
    assert changchun["confirmed"] == 4
    assert changchun["by_type"] == {"mild": 3, "ordinary": 1}
    assert jilin["confirmed"] == 6
    assert jilin["by_type"] == {"mild": 5, "ordinary": 1}
    # Contacts and isolation are counted where people live.
    assert figures(db, region="220100")["contacts"]["close"] == 2
    assert figures(db, region="220200")["contacts"]["close"] == 1
    assert figures(db, region="220200")["isolation"]["total"] == 0


def test_meihekou_is_its_own_city_not_tonghuas(db):
    scenario.build(db)
    assert figures(db, region="220581")["cases"]["asymptomatic"] == 1
    assert figures(db, region="220500")["cases"]["asymptomatic"] == 0


ZH = [
    "3月25日0—24时，全省新增本土确诊病例10例（轻型8例、普通型2例；其中1例为无症状感染者转为确诊病例），"
    "其中吉林市6例、长春市4例；新增本土无症状感染者4例，其中吉林市2例、长春市1例、梅河口市1例。",
    "当日治愈出院和解除医学观察2例（治愈出院1例、解除医学观察1例），其中长春市1例、吉林市1例；"
    "累计治愈出院和解除医学观察3例。",
    "全省累计追踪密切接触者3人，已解除隔离1人；累计追踪次密切接触者1人。",
    "截至3月25日24时，全省隔离管控3人，其中集中隔离2人、居家隔离1人。",
]
EN = [
    "From 00:00 to 24:00 on 25 March 2022, the province reported 10 new local confirmed cases "
    "(8 mild, 2 ordinary; of which 1 was an asymptomatic infection reclassified as confirmed): "
    "Jilin City 6, Changchun 4; 4 new local asymptomatic infections: Jilin City 2, Changchun 1, "
    "Meihekou 1.",
    "2 cases were discharged or released from medical observation (1 discharged, 1 released): "
    "Changchun 1, Jilin City 1; 3 discharged or released in all.",
    "In the province, 3 close contacts have been traced in all, 1 of them released; 1 secondary "
    "close contact has been traced.",
    "At 24:00 on 25 March 2022, 3 people in the province were under isolation control "
    "(2 centralised, 1 at home).",
]


def test_the_golden_texts_in_both_languages(db):
    scenario.build(db)
    zh = "\n\n".join(
        ["# 吉林省疫情通报（2022年3月25日）", "> 草稿：尚未发布，数字以正式发布为准。", *ZH]
    )
    en = "\n\n".join(
        [
            "# Jilin Province: epidemic bulletin, 25 March 2022",
            "> Draft: not yet published; the figures may still change.",
            *EN,
        ]
    )
    assert text(db, "zh-CN") == zh + "\n"
    assert text(db, "en") == en + "\n"


def test_a_citys_text_names_the_city_and_lists_no_cities(db):
    scenario.build(db)
    zh = text(db, "zh-CN", region="220200")
    assert (
        "3月25日0—24时，吉林市新增本土确诊病例6例（轻型5例、普通型1例；其中1例为无症状感染者转为确诊病例）；"
        in zh
    )
    assert "新增本土无症状感染者2例。" in zh
    assert "其中吉林市" not in zh
    en = text(db, "en", region="220200")
    assert (
        "Jilin City reported 6 new local confirmed cases (5 mild, 1 ordinary; of which 1 was" in en
    )


def test_a_part_with_nothing_in_it_is_left_out_not_written_as_zero(db):
    # Only Changchun cases on D, none asymptomatic, nothing closed, no contacts or isolation.
    scenario.case(db, CHANGCHUN, on=D)
    scenario.case(db, CHANGCHUN, clinical_type="ordinary", on=D)
    zh, en = text(db, "zh-CN"), text(db, "en")
    assert "全省新增本土确诊病例2例（轻型1例、普通型1例），其中长春市2例。" in zh
    for absent in ("无症状", "出院", "密切接触者", "隔离", "核酸", "0例", "0人"):
        assert absent not in zh, absent
    assert "new local confirmed cases (1 mild, 1 ordinary): Changchun 2." in en
    body = en.replace("00:00 to 24:00", "")
    for absent in ("asymptomatic", "discharged", "contacts", "isolation", "screened", " 0"):
        assert absent not in body, absent


def test_a_day_with_nothing_at_all_says_so_once(db):
    zh = text(db, "zh-CN", day=D - timedelta(days=30))
    assert "2月23日0—24时，全省无新增需通报的疫情信息。" in zh
    assert zh.split("\n\n", 2)[2] == "2月23日0—24时，全省无新增需通报的疫情信息。\n"


def test_day_boundaries_are_local_midnight(db):
    with clock.frozen(datetime(2022, 3, 25, 23, 59, tzinfo=SHANGHAI)):
        scenario.case(db, JILIN)
    with clock.frozen(datetime(2022, 3, 26, 0, 1, tzinfo=SHANGHAI)):
        scenario.case(db, JILIN, "asymptomatic")
    on_25 = figures(db, day=D)["cases"]
    on_26 = figures(db, day=D + timedelta(days=1))["cases"]
    assert (on_25["confirmed"], on_25["asymptomatic"]) == (1, 0)
    assert (on_26["confirmed"], on_26["asymptomatic"]) == (0, 1)


def test_a_city_user_sees_their_city_and_not_the_province_nor_another_city(db, principal):
    scenario.build(db)
    analyst = principal("analyst")
    mine = bulletin_service.get(db_session=db, principal=analyst, day=D)
    assert mine.region_code == "220100"
    assert mine.figures.sections["cases"]["confirmed"] == 4
    for region in ("220000", "220200"):
        with pytest.raises(Forbidden):
            bulletin_service.get(db_session=db, principal=analyst, day=D, region_code=region)
    with pytest.raises(Forbidden):
        bulletin_service.get(db_session=db, principal=principal("sampler"), day=D)


def test_refuses_a_district_a_future_day_and_an_unknown_format(db):
    with pytest.raises(InvalidInput):
        bulletin_service.get(db_session=db, principal=SYSTEM, day=D, region_code="220102")
    with pytest.raises(InvalidInput):
        bulletin_service.get(db_session=db, principal=SYSTEM, day=D + timedelta(days=5))
    with pytest.raises(InvalidInput):
        bulletin_service.render(
            db_session=db, principal=SYSTEM, day=D, lang="en", fmt="pdf", region_code="220000"
        )


def test_the_days_figures_agree_with_the_counting_rule(db):
    """The SQL of the day's figures and the pure rule (rules.count_events, which the epidemic
    curve uses) count the same, day by day, on random reports and reclassifications."""
    import random

    from bastion.bulletin import queries
    from bastion.bulletin.place import place_of
    from bastion.bulletin.rules import Counted, count_events

    rng = random.Random(6)
    expected: dict = {}
    first = D - timedelta(days=9)
    for _ in range(30):
        reported = first + timedelta(days=rng.randint(0, 9))
        kind = rng.choice(["confirmed", "asymptomatic"])
        made = scenario.case(db, rng.choice([CHANGCHUN, JILIN]), kind, on=reported)
        if kind == "asymptomatic" and rng.random() < 0.5:
            scenario.reclassify(db, made, min(reported + timedelta(days=rng.randint(0, 3)), D))
        for event in count_events(
            classification=made.classification,
            reported_on=made.reported_on,
            reclassified_on=made.reclassified_on,
        ):
            slot = expected.setdefault(event.day, [0, 0, 0])
            slot[0 if event.kind == Counted.confirmed else 1] += 1
            slot[2] += int(event.reclassified)
    place = place_of(db_session=db, code="220000")
    curve = {p["day"]: [p["confirmed"], p["asymptomatic"]] for p in queries.curve(db, place, D)}
    for offset in range(10):
        day = first + timedelta(days=offset)
        got = queries.cases(db, place, day)
        want = expected.get(day, [0, 0, 0])
        assert [got.confirmed, got.asymptomatic, got.reclassified] == want, day
        assert curve[day] == want[:2], day
