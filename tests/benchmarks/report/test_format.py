"""benchmarks.report.format: the one number formatter and the one table builder."""

from __future__ import annotations

import math

from benchmarks.report.format import DASH, fmt, get, ratio_cell, table


def test_fmt_shows_each_kind_of_figure() -> None:
    assert fmt(None) == DASH and fmt(math.nan) == DASH
    assert fmt(True) == "yes" and fmt(False) == "no"
    assert fmt(12345) == "12,345"
    assert fmt(1234.56) == "1,235"
    assert fmt(3.14159) == "3.1" and fmt(3.14159, 2) == "3.14"
    assert fmt("not negotiated") == "not negotiated"


def test_fmt_can_keep_its_digits_with_separators() -> None:
    assert fmt(1234.56, 1, keep_digits=True) == "1,234.6"
    assert fmt(30, 0, keep_digits=True) == "30"
    assert fmt(7, 1, keep_digits=True) == "7.0"
    assert fmt(None, 1, keep_digits=True) == DASH


def test_fmt_plain_has_no_separators_and_keeps_decimals_past_a_thousand() -> None:
    assert fmt(12345, plain=True) == "12345" and fmt(-7, plain=True) == "-7"
    assert fmt(1575.04, 0, plain=True) == "1575" and fmt(1234.56, 2, plain=True) == "1234.56"
    assert fmt(3.14159, 2, plain=True) == "3.14"
    assert fmt(None, plain=True) == DASH and fmt(True, plain=True) == "yes"
    assert fmt("eof", plain=True) == "eof"
    # with keep_digits, ints get the decimals too
    assert fmt(12345, 1, keep_digits=True, plain=True) == "12345.0"
    assert fmt(1234.56, 1, keep_digits=True, plain=True) == "1234.6"
    assert fmt(20.0, 0, keep_digits=True, plain=True) == "20"


def test_ratio_cell_and_get() -> None:
    assert ratio_cell(3, 2) == "1.50×"
    assert ratio_cell(3, 0) == DASH and ratio_cell("x", 2) == DASH
    data = {"a": [{"b": 1}]}
    assert get(data, "a", 0, "b") == 1
    assert get(data, "a", 5, "b") is None and get(data, "missing", "b") is None


def test_table_is_markdown() -> None:
    assert table(["A", "B"], [["1", "2"]]) == "| A | B |\n|---|---|\n| 1 | 2 |"
