"""Parameter serialization against the OpenAPI style tables (3.0.4 / 3.1.1), and round-trip properties."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolbridge.connectors.openapi._serialize import cookie_pairs, header_value, path_value, query_pairs

COLOR = "blue"
COLORS = ["blue", "black", "brown"]
RGB = {"R": 100, "G": 200, "B": 150}


@pytest.mark.parametrize(
    ("style", "explode", "value", "expected"),
    [
        ("simple", False, COLOR, "blue"),
        ("simple", False, COLORS, "blue,black,brown"),
        ("simple", False, RGB, "R,100,G,200,B,150"),
        ("simple", True, COLORS, "blue,black,brown"),
        ("simple", True, RGB, "R=100,G=200,B=150"),
        ("label", False, "", "."),
        ("label", False, COLOR, ".blue"),
        ("label", False, COLORS, ".blue,black,brown"),
        ("label", False, RGB, ".R,100,G,200,B,150"),
        ("label", True, COLORS, ".blue.black.brown"),
        ("label", True, RGB, ".R=100.G=200.B=150"),
        ("matrix", False, "", ";color"),
        ("matrix", False, COLOR, ";color=blue"),
        ("matrix", False, COLORS, ";color=blue,black,brown"),
        ("matrix", False, RGB, ";color=R,100,G,200,B,150"),
        ("matrix", True, COLORS, ";color=blue;color=black;color=brown"),
        ("matrix", True, RGB, ";R=100;G=200;B=150"),
    ],
)
def test_path_styles_follow_the_table(style: str, explode: bool, value: Any, expected: str) -> None:
    assert path_value("color", value, style, explode) == expected


@pytest.mark.parametrize(
    ("style", "explode", "value", "expected"),
    [
        ("form", False, "", "color="),
        ("form", False, COLOR, "color=blue"),
        ("form", False, COLORS, "color=blue,black,brown"),
        ("form", False, RGB, "color=R,100,G,200,B,150"),
        ("form", True, COLORS, "color=blue&color=black&color=brown"),
        ("form", True, RGB, "R=100&G=200&B=150"),
        ("spaceDelimited", False, COLORS, "color=blue%20black%20brown"),
        ("pipeDelimited", False, COLORS, "color=blue|black|brown"),
        ("deepObject", True, RGB, "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150"),
    ],
)
def test_query_styles_follow_the_table(style: str, explode: bool, value: Any, expected: str) -> None:
    assert "&".join(query_pairs("color", value, style, explode)) == expected


def test_primitives_are_written_as_json_scalars() -> None:
    assert query_pairs("on", True, "form", True) == ["on=true"]
    assert query_pairs("n", 1.5, "form", True) == ["n=1.5"]
    assert query_pairs("n", None, "form", True) == ["n="]


def test_headers_and_cookies() -> None:
    assert header_value(COLORS, False) == "blue,black,brown"
    assert header_value(RGB, True) == "R=100,G=200,B=150"
    assert header_value("a b/c", False) == "a b/c"  # headers are not percent-encoded
    assert cookie_pairs("color", RGB, True) == [("R", "100"), ("G", "200"), ("B", "150")]
    assert cookie_pairs("color", COLORS, False) == [("color", "blue,black,brown")]


def test_reserved_characters_are_encoded_unless_allowed() -> None:
    assert query_pairs("q", "a/b?c&d", "form", True) == ["q=a%2Fb%3Fc%26d"]
    assert query_pairs("q", "a/b?c", "form", True, allow_reserved=True) == ["q=a/b?c"]
    assert path_value("id", "a/b", "simple", False) == "a%2Fb"


# -- properties: whatever the text, the delimiters of a style stay unambiguous --------------------------

text = st.text(min_size=1, max_size=12)
words = st.lists(text, min_size=1, max_size=5)
members = st.dictionaries(st.text(min_size=1, max_size=8), text, min_size=1, max_size=4)


@settings(deadline=None)  # timing varies with machine load; correctness does not
@given(words)
def test_form_exploded_arrays_round_trip(values: list[str]) -> None:
    pairs = query_pairs("k", values, "form", True)
    assert [unquote(p.split("=", 1)[1]) for p in pairs] == values
    assert all(p.startswith("k=") for p in pairs)


@settings(deadline=None)  # timing varies with machine load; correctness does not
@given(words, st.sampled_from(["form", "spaceDelimited", "pipeDelimited"]))
def test_delimited_arrays_round_trip(values: list[str], style: str) -> None:
    if style == "spaceDelimited":  # the delimiter is an encoded space: a space in a value is ambiguous
        values = [v.replace(" ", "_") for v in values]
    (pair,) = query_pairs("k", values, style, False)
    sep = {"form": ",", "spaceDelimited": "%20", "pipeDelimited": "|"}[style]
    assert [unquote(v) for v in pair.removeprefix("k=").split(sep)] == values


@settings(deadline=None)  # timing varies with machine load; correctness does not
@given(members)
def test_deep_objects_round_trip(value: dict[str, str]) -> None:
    pairs = query_pairs("k", value, "deepObject", True)
    decoded = {}
    for pair in pairs:
        name, _, item = pair.partition("=")
        assert name.startswith("k%5B") and name.endswith("%5D")
        decoded[unquote(name[4:-3])] = unquote(item)
    assert decoded == value


@settings(deadline=None)  # timing varies with machine load; correctness does not
@given(words, st.sampled_from(["simple", "label", "matrix"]), st.booleans())
def test_path_arrays_round_trip(values: list[str], style: str, explode: bool) -> None:
    rendered = path_value("k", values, style, explode)
    assert "/" not in rendered and "?" not in rendered and "#" not in rendered
    if style == "simple":
        items = rendered.split(",")
    elif style == "label":
        items = rendered[1:].split("." if explode else ",")
    else:
        items = (
            [p.removeprefix("k=") for p in rendered[1:].split(";")] if explode else rendered[3:].split(",")
        )
    assert [unquote(i) for i in items] == values


@settings(deadline=None)  # timing varies with machine load; correctness does not
@given(members, st.booleans())
def test_path_objects_round_trip(value: dict[str, str], explode: bool) -> None:
    rendered = path_value("k", value, "simple", explode)
    if explode:
        decoded = dict(tuple(unquote(x) for x in part.split("=")) for part in rendered.split(","))
    else:
        flat = [unquote(x) for x in rendered.split(",")]
        decoded = dict(zip(flat[::2], flat[1::2], strict=True))
    assert decoded == value
