from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typing_extensions import TypedDict

from toolbridge.catalog import Tool, check_tool_name
from toolbridge.catalog._docstrings import parse_docstring
from toolbridge.catalog._schema import inspect_function
from toolbridge.errors import ConfigurationError


class Point(TypedDict):
    x: int
    y: int


def search(
    query: str, limit: int = 10, kind: Literal["a", "b"] = "a", where: Point | None = None
) -> list[str]:
    """Search the index.

    Longer explanation.

    Args:
        query: words to look for
        limit: at most this many
            results (continued line)
        kind: which index
    """
    return []


def test_schema_from_hints_and_docstring() -> None:
    sig = inspect_function(search)
    schema = sig.input_schema
    assert sig.description == "Search the index.\n\nLonger explanation."
    assert schema["type"] == "object"
    assert schema["required"] == ["query"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["query"] == {"type": "string", "description": "words to look for"}
    assert schema["properties"]["limit"]["default"] == 10
    assert schema["properties"]["limit"]["description"] == "at most this many results (continued line)"
    assert schema["properties"]["kind"]["enum"] == ["a", "b"]
    assert "title" not in str(schema)


def test_sphinx_and_numpy_docstrings() -> None:
    sphinx = parse_docstring("Do it.\n\n:param a: first one\n:param int b: second\n:returns: x")
    assert sphinx.description == "Do it."
    assert sphinx.params == {"a": "first one", "b": "second"}
    numpy = parse_docstring("Do it.\n\nParameters\n----------\na : int\n    first one\n")
    assert numpy.params == {"a": "first one"}


def test_unannotated_and_variadic_parameters_are_refused() -> None:
    def bare(x):  # type: ignore[no-untyped-def]
        return x

    def variadic(*args: int) -> None: ...

    with pytest.raises(ConfigurationError, match="has no type hint"):
        inspect_function(bare)
    with pytest.raises(ConfigurationError, match=r"\*args"):
        inspect_function(variadic)


@pytest.mark.parametrize("name", ["notes.add", "a.b", "git-hub.list_repos.v2", "x" * 30 + "." + "y" * 33])
def test_valid_names(name: str) -> None:
    assert check_tool_name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Notes.add", "characters"),
        ("notes add", "characters"),
        ("noprefix", "no connector prefix"),
        ("a." + "b" * 63, "longer than 64"),
        ("", "characters"),
    ],
)
def test_invalid_names(name: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        check_tool_name(name)


@given(st.text(max_size=80))
def test_name_rule_matches_design(name: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
    ok = 0 < len(name) <= 64 and set(name) <= allowed and "." in name.strip(".")
    try:
        check_tool_name(name)
    except ConfigurationError:
        assert not ok
    else:
        assert ok


def test_tool_must_carry_its_connector_prefix() -> None:
    with pytest.raises(ConfigurationError, match="does not start with its connector"):
        Tool(name="a.b", connector="c", description="", input_schema={"type": "object"})
