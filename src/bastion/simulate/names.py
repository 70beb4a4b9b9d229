"""Name data for the synthetic province: surnames by frequency, given names by era and sex,
place-name stems for streets, communities and roads, and mobile prefixes.

Everything here is pure: pickers take the caller's seeded ``random.Random`` so a seed always
gives the same names. Frequencies are rounded from published surname rankings, tilted towards
the north-east (more 于, 孙, 赵; fewer 陈, 黄, 林 than the national list); Yanbian's Korean
households draw from a Korean surname list.
"""

from __future__ import annotations

import random
from bisect import bisect
from itertools import accumulate

#: (surname, weight per mille), north-eastern China.
SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 86),
    ("李", 80),
    ("张", 76),
    ("刘", 68),
    ("赵", 34),
    ("孙", 30),
    ("杨", 28),
    ("于", 24),
    ("陈", 24),
    ("高", 18),
    ("马", 16),
    ("徐", 15),
    ("吴", 14),
    ("周", 14),
    ("郭", 13),
    ("朱", 12),
    ("林", 10),
    ("姜", 10),
    ("宋", 10),
    ("韩", 10),
    ("曹", 9),
    ("董", 9),
    ("冯", 9),
    ("田", 8),
    ("胡", 8),
    ("何", 7),
    ("梁", 7),
    ("黄", 7),
    ("郑", 7),
    ("谢", 6),
    ("崔", 6),
    ("吕", 6),
    ("唐", 6),
    ("许", 6),
    ("杜", 5),
    ("邓", 5),
    ("罗", 5),
    ("付", 5),
    ("曲", 5),
    ("丁", 5),
    ("沈", 5),
    ("任", 5),
    ("袁", 5),
    ("姚", 4),
    ("范", 4),
    ("金", 4),
    ("石", 4),
    ("贾", 4),
    ("魏", 4),
    ("白", 4),
    ("方", 4),
    ("侯", 4),
    ("邵", 4),
    ("孟", 4),
    ("秦", 3),
    ("常", 3),
    ("尹", 3),
    ("闫", 3),
    ("薛", 3),
    ("蔡", 3),
    ("苏", 3),
    ("卢", 3),
    ("潘", 3),
    ("彭", 3),
    ("程", 3),
    ("武", 3),
    ("戴", 2),
    ("叶", 2),
    ("史", 2),
    ("陶", 2),
    ("贺", 2),
    ("顾", 2),
    ("毛", 2),
    ("郝", 2),
    ("邹", 2),
    ("康", 2),
    ("关", 2),
    ("佟", 2),
    ("那", 1),
    ("隋", 1),
    ("矫", 1),
    ("欧阳", 0.4),
    ("司马", 0.2),
    ("上官", 0.1),
)

#: Surnames of Yanbian's Korean (朝鲜族) households.
KOREAN_SURNAMES: tuple[tuple[str, float], ...] = (
    ("金", 22),
    ("李", 15),
    ("朴", 10),
    ("崔", 7),
    ("郑", 5),
    ("姜", 4),
    ("赵", 3),
    ("张", 3),
    ("尹", 3),
    ("韩", 3),
    ("吴", 2),
    ("权", 2),
    ("申", 2),
    ("安", 2),
    ("柳", 2),
    ("全", 2),
    ("玄", 1),
    ("南", 1),
    ("洪", 1),
    ("许", 1),
)

#: Given-name characters by (sex, era): era 0 = born before 1960, 1 = 1960–1989, 2 = since 1990.
GIVEN_CHARS: dict[tuple[str, int], str] = {
    ("M", 0): "国建德文明志永福春长庆发金宝振玉成兴华忠贵山林海军民生云广和学荣顺",
    ("F", 0): "淑秀桂玉凤兰英珍芬芳华琴霞梅素云荣娥香菊翠萍春丽敏贞清秋",
    ("M", 1): "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宁健峰亮东海林龙立新志晓建国红卫岩",
    ("F", 1): "丽艳敏静燕娟霞红玲芳颖丹慧莉婷雪琳晶洁梅萍娜杰华秀春冬晓玉岩微",
    ("M", 2): "浩宇轩子博然泽睿俊涵梓铭翔晨航昊天毅辰逸宸皓文一嘉思锦瑞鑫佳奕诺",
    ("F", 2): "欣怡涵子梓诗雨萱可琪佳悦思彤馨婷妍一语梦嘉若晨雅艺琳瑶依心芮沐安",
}

#: Given-name characters of Korean households, by sex (all eras).
KOREAN_GIVEN_CHARS: dict[str, str] = {
    "M": "哲浩成光龙俊锡镇洙植范昌万吉永勋日男铁",
    "F": "英姬淑顺玉花善美贞爱福子兰今仙京明惠",
}

#: Two-character stems for street, community, village and road names.
PLACE_STEMS: tuple[str, ...] = tuple(
    # A block of text reads and edits better than 128 quoted strings.
    """新华 胜利 和平 东风 红旗 光明 建设 民主 幸福 友谊 繁荣 富民 兴隆 青年 春城 桃源
    南岭 永安 长青 西安 东安 北安 自强 团结 前进 朝阳 曙光 文化 育才 安达 康平 吉祥
    松江 江南 江北 临河 湖西 湖东 翠湖 净月 东盛 西新 北湖 南湖 绿园 锦程 普阳 正阳
    双德 合心 城西 城东 铁北 站前 柳影 桂林 鸿城 永春 长山 清河 白山 松花 龙潭 德胜
    北山 江湾 新兴 向阳 丰收 长安 太平 吉林 延河 东兴 西兴 兴华 新民 安乐 平安 福安
    宏业 金桥 银河 春晖 晨光 华山 泰山 长白 青山 碧水 枫林 杏花 梨树 丰泽 瑞祥 通达
    五一 红星 先锋 工农 育英 树人 会宁 开运 金珠 宝山 凤凰 锦江 雁鸣 鹿乡 柳河 明珠
    嘉和 盛世 永吉 兴业 益民 顺达 万宝 新立 双桥 三道 四马 八里 九龙 十里 东湖 西湖""".split()  # noqa: SIM905
)
ROAD_SUFFIXES: tuple[str, ...] = ("路", "街", "大街", "大路", "路", "街")

#: Mobile number prefixes (11-digit mobiles: prefix + 8 digits).
MOBILE_PREFIXES: tuple[str, ...] = tuple(
    "130 131 132 133 134 135 136 137 138 139 150 151 152 155 156 157 158 159 "  # noqa: SIM905
    "166 175 176 177 180 181 182 183 185 186 187 188 189 191 198 199".split()
)

CN_DIGITS = "零一二三四五六七八九十"


def cn_number(n: int) -> str:
    """1..99 as Chinese numerals (二, 十二, 二十三); larger numbers as digits."""
    if n <= 10:
        return CN_DIGITS[n]
    if n < 20:
        return "十" + CN_DIGITS[n - 10]
    if n < 100:
        tens, ones = divmod(n, 10)
        return CN_DIGITS[tens] + "十" + (CN_DIGITS[ones] if ones else "")
    return str(n)


def distinct_stems(rng: random.Random, count: int) -> list[str]:
    """``count`` place stems, all different: the stem list in a seeded order, then the same
    stems again with a numeral (新华二, 新华三) once the list runs out."""
    order = list(PLACE_STEMS)
    rng.shuffle(order)
    out = order[:count]
    lap = 2
    while len(out) < count:
        out.extend(f"{stem}{cn_number(lap)}" for stem in order[: count - len(out)])
        lap += 1
    return out


def era_of(birth_year: int) -> int:
    """The given-name fashion a birth year belongs to (0, 1 or 2, see :data:`GIVEN_CHARS`)."""
    if birth_year < 1960:
        return 0
    return 1 if birth_year < 1990 else 2


class NamePicker:
    """Draws surnames and given names with the configured frequencies from a caller's RNG."""

    def __init__(self) -> None:
        self._han = _Weighted(SURNAMES)
        self._korean = _Weighted(KOREAN_SURNAMES)

    def surname(self, rng: random.Random, *, korean: bool = False) -> str:
        return (self._korean if korean else self._han).pick(rng)

    def given(self, rng: random.Random, sex: str, birth_year: int, *, korean: bool = False) -> str:
        """A given name of one character (more common among older people) or two."""
        era = era_of(birth_year)
        pool = KOREAN_GIVEN_CHARS[sex] if korean else GIVEN_CHARS[(sex, era)]
        n = len(pool)
        first = pool[int(rng.random() * n)]
        single_share = (0.35, 0.25, 0.15)[era]
        if not korean and rng.random() < single_share:
            return first
        second = pool[int(rng.random() * n)]
        # Doubled characters (婷婷, 欣欣) are a girls' fashion; elsewhere draw again once.
        if second == first and sex == "M":
            second = pool[int(rng.random() * n)]
        return first + second


class _Weighted:
    """Weighted choice by bisecting cumulative weights: one RNG call per draw."""

    def __init__(self, table: tuple[tuple[str, float], ...]) -> None:
        self.items = [name for name, _ in table]
        self.cumulative = list(accumulate(w for _, w in table))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> str:
        return self.items[bisect(self.cumulative, rng.random() * self.total)]


def mobile(rng: random.Random) -> str:
    """An 11-digit mobile number."""
    prefix = MOBILE_PREFIXES[int(rng.random() * len(MOBILE_PREFIXES))]
    return f"{prefix}{rng.getrandbits(27) % 100_000_000:08d}"
