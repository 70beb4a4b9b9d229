"""The edge's text types: which characters a code, a note and a name may hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from bastion.core.text import Line, Name, Text, has_control

LINE = TypeAdapter(Line)
TEXT = TypeAdapter(Text)
NAME = TypeAdapter(Name)


# Free text refuses control characters (Cc) only: a note may quote anything printable.
@pytest.mark.parametrize(
    ("value", "line", "text", "name"),
    [
        ("张伟", True, True, True),
        ("R-2022-04-02", True, True, True),
        ("first line\nsecond\tcolumn", False, True, False),
        ("a\x00b", False, False, False),
        ("bell\x07", False, False, False),
        ("علی\u200cرضا", False, True, True),  # ZWNJ: how this name is written
        ("क्\u200dष", False, True, True),  # ZWJ
        ("王\u200b芳", False, True, False),  # zero-width space: hides, joins nothing
        ("abc\u202edcba", False, True, False),  # right-to-left override
        ("\ufeffBOM", False, True, False),
    ],
)
def test_which_characters_each_type_keeps(value, line, text, name):
    for adapter, kept in ((LINE, line), (TEXT, text), (NAME, name)):
        if kept:
            assert adapter.validate_python(value) == value
        else:
            with pytest.raises(ValidationError) as refused:
                adapter.validate_python(value)
            assert refused.value.errors()[0]["type"] == "control_chars"


@given(st.text())
def test_a_name_is_refused_only_for_what_a_line_is_refused_for_bar_the_joiners(value):
    assert has_control(value, name=True) == has_control(
        value.replace("\u200c", "").replace("\u200d", "")
    )
