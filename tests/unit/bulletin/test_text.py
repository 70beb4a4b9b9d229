"""The text of the bulletin on the figures of 25 March 2022 (DOMAIN.md), in both languages."""

from __future__ import annotations

from datetime import date

from bastion.bulletin import text
from bastion.bulletin.schemas import Figures


def city(code: str, zh: str, en: str, count: int) -> dict[str, object]:
    return {"code": code, "name_zh": zh, "name_en": en, "count": count}


JILIN_CITY = ("220200", "吉林市", "Jilin City")
CHANGCHUN = ("220100", "长春市", "Changchun")

MARCH_25 = Figures(
    day=date(2022, 3, 25),
    region_code="220000",
    region_name_zh="吉林省",
    region_name_en="Jilin Province",
    level="province",
    timezone="Asia/Shanghai",
    sections={
        "cases": {
            "confirmed": 1122,
            "by_type": {"mild": 1112, "ordinary": 10},
            "confirmed_by_city": [
                city(*JILIN_CITY, 560),
                city(*CHANGCHUN, 554),
                city("220300", "四平市", "Siping", 7),
                city("220800", "白城市", "Baicheng", 1),
            ],
            "reclassified": 0,
            "asymptomatic": 1374,
            "asymptomatic_by_city": [
                city(*JILIN_CITY, 967),
                city(*CHANGCHUN, 403),
                city("220400", "辽源市", "Liaoyuan", 2),
                city("220300", "四平市", "Siping", 1),
                city("220581", "梅河口市", "Meihekou", 1),
            ],
        },
        "recoveries": {
            "day": 690,
            "discharged": 300,
            "released": 390,
            "by_city": [
                city(*JILIN_CITY, 420),
                city(*CHANGCHUN, 258),
                city("222400", "延边州", "Yanbian", 12),
            ],
            "cumulative": 2437,
        },
        "contacts": {
            "close": 96607,
            "close_released": 41510,
            "secondary": 102312,
            "secondary_released": 62698,
        },
        "isolation": {"total": 186169, "centralised": 40823, "home": 145346},
        "screening": {"screened": 8_660_000, "cumulative": 131_000_000},
        "rounds": {"rounds": []},
    },
)


def test_the_release_of_25_march_2022_in_chinese():
    assert text.paragraphs(MARCH_25, "zh-CN") == [
        "3月25日0—24时，全省新增本土确诊病例1122例（轻型1112例、普通型10例），其中吉林市560例、"
        "长春市554例、四平市7例、白城市1例；新增本土无症状感染者1374例，其中吉林市967例、长春市403例、"
        "辽源市2例、四平市1例、梅河口市1例。",
        "当日治愈出院和解除医学观察690例（治愈出院300例、解除医学观察390例），其中吉林市420例、"
        "长春市258例、延边州12例；累计治愈出院和解除医学观察2437例。",
        "全省累计追踪密切接触者96607人，已解除隔离41510人；累计追踪次密切接触者102312人，"
        "已解除隔离62698人。",
        "截至3月25日24时，全省隔离管控186169人，其中集中隔离40823人、居家隔离145346人。",
        "3月25日全省完成核酸检测866万人，累计检测1.31亿人次。",
    ]
    assert text.title(MARCH_25, "zh-CN") == "吉林省疫情通报（2022年3月25日）"


def test_the_release_of_25_march_2022_in_english():
    assert text.paragraphs(MARCH_25, "en") == [
        "From 00:00 to 24:00 on 25 March 2022, the province reported 1,122 new local confirmed "
        "cases (1,112 mild, 10 ordinary): Jilin City 560, Changchun 554, Siping 7, Baicheng 1; "
        "1,374 new local asymptomatic infections: Jilin City 967, Changchun 403, Liaoyuan 2, "
        "Siping 1, Meihekou 1.",
        "690 cases were discharged or released from medical observation (300 discharged, "
        "390 released): Jilin City 420, Changchun 258, Yanbian 12; 2,437 discharged or released "
        "in all.",
        "In the province, 96,607 close contacts have been traced in all, 41,510 of them released; "
        "102,312 secondary close contacts have been traced, 62,698 of them released.",
        "At 24:00 on 25 March 2022, 186,169 people in the province were under isolation control "
        "(40,823 centralised, 145,346 at home).",
        "On 25 March 2022, 8.66 million people were screened by nucleic-acid test in the "
        "province; 131 million person-times in all.",
    ]
    assert text.title(MARCH_25, "en") == "Jilin Province: epidemic bulletin, 25 March 2022"


def test_sections_the_renderer_does_not_know_are_skipped():
    figures = MARCH_25.model_copy(update={"sections": {"weather": {"sunny": 1}}})
    assert text.paragraphs(figures, "zh-CN") == ["3月25日0—24时，全省无新增需通报的疫情信息。"]
