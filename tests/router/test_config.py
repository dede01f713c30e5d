"""Bad capabilities are refused when the configuration is loaded, with the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.router.conftest import CAPABILITY, hub_from, write_config
from toolbridge.errors import ConfigFileError
from toolbridge.settings import parse_settings

GOOD_PRIMARY = '        arguments: {key: "${input.path}", body: "${input.content}"}'


def refused(tmp_path: Path, old: str, new: str, *, extra_input: str = "") -> tuple[ConfigFileError, int]:
    """The error for the standard configuration with ``old`` replaced by ``new``, and ``new``'s line."""
    capabilities = CAPABILITY.replace(old, new)
    if extra_input:
        capabilities = capabilities.replace(
            "        content: {type: string}\n", "        content: {type: string}\n" + extra_input
        )
    path = write_config(
        tmp_path,
        "sqlite+aiosqlite:///:memory:",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        capabilities=capabilities,
    )
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if new.strip().splitlines()[0] in text)
    with pytest.raises(ConfigFileError) as caught:
        hub_from(path)
    return caught.value, line


def test_an_unknown_provider_tool_is_named_with_its_line_and_a_suggestion(tmp_path: Path) -> None:
    error, line = refused(tmp_path, "- tool: primary.put_object", "- tool: primary.put_objekt")
    assert error.line == line and str(tmp_path / "toolbridge.yaml") in str(error)
    assert error.key == "capabilities.store_file.providers.0.tool"
    assert "no tool is named 'primary.put_objekt'" in error.message
    assert error.hint == "did you mean 'primary.put_object'?"


def test_an_unknown_connector_is_named(tmp_path: Path) -> None:
    error, line = refused(tmp_path, "- tool: backup.upload_file", "- tool: bakup.upload_file")
    assert error.line == line and "no connector is named 'bakup'" in error.message
    assert error.hint == "did you mean 'backup'?"


def test_a_mapping_that_reads_a_missing_input_field_is_refused(tmp_path: Path) -> None:
    error, line = refused(
        tmp_path, GOOD_PRIMARY, '        arguments: {key: "${input.pth}", body: "${input.content}"}'
    )
    assert error.line == line and error.key == "capabilities.store_file.providers.0.arguments.key"
    assert (
        "'${input.pth}' reads the input field 'pth', which the capability's input does not have"
        in error.message
    )
    assert "did you mean 'path'?" in error.message


def test_a_type_mismatch_against_the_provider_schema_is_refused(tmp_path: Path) -> None:
    error, line = refused(
        tmp_path,
        GOOD_PRIMARY,
        '        arguments: {key: "${input.path}", body: "${input.size}"}',
        extra_input="        size: {type: integer}\n",
    )
    assert error.line == line
    assert "type mismatch: the input field 'size' is integer" in error.message
    assert "'primary.put_object' takes 'body' as string" in error.message


def test_a_constant_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    error, _ = refused(tmp_path, "folder: fallback", "folder: 3")
    assert "the constant 3 is integer" in error.message and error.key is not None
    assert error.key.endswith("providers.1.arguments.folder")


def test_an_argument_the_tool_does_not_take_is_refused(tmp_path: Path) -> None:
    error, _ = refused(
        tmp_path, GOOD_PRIMARY, '        arguments: {key: "${input.path}", body: "${input.content}", bdy: x}'
    )
    assert "'primary.put_object' takes no argument 'bdy'" in error.message


def test_a_required_provider_argument_left_unset_is_refused(tmp_path: Path) -> None:
    error, line = refused(tmp_path, GOOD_PRIMARY, '        arguments: {key: "${input.path}"}')
    assert error.line == line and "does not set 'body', required by 'primary.put_object'" in error.message


def test_a_malformed_expression_is_refused_where_it_is_written(tmp_path: Path) -> None:
    error, line = refused(
        tmp_path, GOOD_PRIMARY, '        arguments: {key: "${input.path[}", body: "${input.content}"}'
    )
    assert error.line == line and "is not a valid expression" in error.message
    assert error.key == "capabilities.store_file.providers.0.arguments.key"


def test_an_input_that_is_not_an_object_schema_is_refused(tmp_path: Path) -> None:
    error, _ = refused(
        tmp_path, "      type: object\n      properties:", "      type: string\n      properties:"
    )
    assert error.key == "capabilities.store_file.input" and "type 'object'" in error.message


def test_several_problems_are_counted(tmp_path: Path) -> None:
    error, _ = refused(
        tmp_path, GOOD_PRIMARY, '        arguments: {key: "${input.pth}", body: "${input.cntent}"}'
    )
    assert "(and 1 more problem)" in error.message


def test_a_capability_without_providers_is_a_parse_error_with_its_line() -> None:
    text = "capabilities:\n  noop:\n    description: x\n    providers: []\n"
    with pytest.raises(ConfigFileError) as caught:
        parse_settings(text)
    assert caught.value.line == 4 and caught.value.key == "capabilities.noop.providers"


def test_an_expression_that_forgets_the_input_root_is_refused_with_the_fix(tmp_path: Path) -> None:
    error, line = refused(
        tmp_path, GOOD_PRIMARY, '        arguments: {key: "${path}", body: "${input.content}"}'
    )
    assert error.line == line
    assert (
        "reads 'path', but expressions see the capability's input as 'input' (write 'input.path')"
        in error.message
    )


def test_an_optional_input_feeding_a_required_argument_or_a_provider_listed_twice_is_refused(
    tmp_path: Path,
) -> None:
    """A call without the optional field failed at the provider with a 422 (no fallback), and a provider
    listed twice shared its key between its tries (found by an outside probe)."""
    error, _ = refused(tmp_path, "      required: [path, content]", "      required: [content]")
    assert "requires 'key', but it comes from the optional input field 'path'" in error.message
    assert "${input.path || '...'}" in (error.hint or "")
    error, _ = refused(tmp_path, "      - tool: backup.upload_file", "      - tool: primary.put_object")
    assert "'primary.put_object' is listed twice" in error.message
