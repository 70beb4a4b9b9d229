"""Pure rules for resident ID numbers (GB 11643) and for masking personal data."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
# ASCII digits only: ``\d`` would also accept Arabic-Indic and other Unicode digits.
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


def check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


@dataclass(frozen=True)
class ResidentId:
    number: str
    region: str
    birth_date: date
    sex: str  # "M" when the sequence is odd


class IdNumberError(ValueError):
    """Why a resident ID number was refused; ``reason`` is a message key."""

    def __init__(self, reason: str, **params: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params


def normalise(raw: str) -> str:
    """Canonical form of a document number: full-width characters (a Chinese input method's
    full-width mode types １２３ and ｘ) folded to ASCII, spaces removed, letters upper-case."""
    folded = unicodedata.normalize("NFKC", raw)
    return "".join(folded.split()).upper()


def parse_resident_id(raw: str, *, today: date | None = None) -> ResidentId:
    """Validate an 18-character resident ID number; raise :class:`IdNumberError` naming why."""
    number = normalise(raw)
    if len(number) != 18:
        raise IdNumberError("id.wrong_length", length=len(number))
    if not _SHAPE.fullmatch(number):
        raise IdNumberError("id.bad_characters")
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberError("id.bad_birth_date", value=number[6:14]) from None
    if born.year < 1880 or (today is not None and born > today):
        raise IdNumberError("id.bad_birth_date", value=number[6:14])
    expected = check_char(number[:17])
    if number[17] != expected:
        raise IdNumberError("id.bad_check_char", got=number[17], expected=expected)
    sex = "M" if int(number[16]) % 2 == 1 else "F"
    return ResidentId(number=number, region=number[:6], birth_date=born, sex=sex)


def make_resident_id(region6: str, born: date, sequence: int) -> str:
    """Build a valid number from its parts (simulation, tests). ``sequence`` is 0..999."""
    first17 = f"{region6}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_char(first17)


def mask_id(number: str) -> str:
    """Keep only the first and last characters: 2****************5."""
    if len(number) <= 2:
        return "*" * len(number)
    return number[0] + "*" * (len(number) - 2) + number[-1]


def mask_name(name: str) -> str:
    """Keep the surname (the first character; two for the common compound surnames)."""
    if not name:
        return name
    keep = 2 if name[:2] in COMPOUND_SURNAMES else 1
    if len(name) <= keep:
        return name[0] + "*"
    return name[:keep] + "*" * (len(name) - keep)


def mask_phone(phone: str | None) -> str | None:
    """Hide the middle: 138****5678. At least four characters are always hidden, so a short
    number is never shown whole."""
    if not phone:
        return phone
    n = len(phone)
    if n <= 4:
        return "*" * n
    tail = min(4, n - 4)
    head = min(3, n - 4 - tail)
    return phone[:head] + "*" * (n - head - tail) + phone[n - tail :]


COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
    }
)
