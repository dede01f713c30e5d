"""A capability answers in one shape whichever provider served it: each provider's ``result`` mapping,
checked against the capability's ``output`` schema (docs/patterns.md, "Result mappings")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.router.conftest import CAPABILITY, hub_from, write_config
from tests.router.test_config import refused
from toolbridge import Principal
from toolbridge.errors import ConfigFileError, ConfigurationError
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio
BOT = Principal.agent("bot", ["capability.*"])
FILE = {"path": "a/b.txt", "content": "hello"}
OUTPUT = """    output:
      type: object
      properties:
        stored_at: {type: string}
        by: {type: string}
      required: [stored_at, by]
      additionalProperties: false
    providers:
"""
SHAPED = (
    CAPABILITY.replace("    providers:\n", OUTPUT)
    .replace(
        '        arguments: {key: "${input.path}", body: "${input.content}"}\n',
        '        arguments: {key: "${input.path}", body: "${input.content}"}\n'
        '        result: {stored_at: "${output.location}", by: primary}\n',
    )
    .replace(
        "folder: fallback}\n",
        'folder: fallback}\n        result: {stored_at: "files/${output.file.id}", by: backup, size: null}\n',
    )
)


async def test_each_provider_s_result_is_mapped_to_the_capability_s_one_shape(
    tmp_path: Path, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    primary.then(Reply(body={"location": "s3://b/a/b.txt", "etag": "x"}), Reply(503), Reply(503), Reply(503))
    backup.then(Reply(body={"file": {"id": "F123", "name": "a/b.txt"}}))
    hub = hub_from(
        write_config(tmp_path, "sqlite+aiosqlite:///:memory:", primary, backup, capabilities=SHAPED)
    )
    async with hub:
        assert hub.catalog.get("capability.store_file").output_schema is not None
        served = await hub.call(BOT, "capability.store_file", FILE)
        fell_back = await hub.call(BOT, "capability.store_file", FILE)
    assert served.value == {"stored_at": "s3://b/a/b.txt", "by": "primary"}
    assert fell_back.value == {"stored_at": "files/F123", "by": "backup"}  # null members left out


async def test_a_result_that_does_not_fit_the_output_is_the_configuration_s_mistake_and_not_repeated(
    tmp_path: Path, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    primary.then(Reply(body={"key": "a/b.txt"}))  # no location: stored_at comes out null, and is required
    hub = hub_from(
        write_config(tmp_path, "sqlite+aiosqlite:///:memory:", primary, backup, capabilities=SHAPED)
    )
    async with hub:
        with pytest.raises(ConfigurationError) as caught:
            await hub.call(BOT, "capability.store_file", FILE)
    assert str(caught.value.message) == (
        "capability.store_file: primary.put_object did the call, but its result as providers.0.result maps "
        "it does not fit the capability's output schema: the result: 'stored_at' is a required property"
    )
    assert caught.value.hint is not None and caught.value.hint.startswith("the call was done: do not make it")
    assert "capabilities.store_file.providers.0.result" in caught.value.hint
    assert len(primary.requests) == 1 and backup.requests == []  # done once, and no other provider tried


def _refused(tmp_path: Path, capabilities: str) -> ConfigFileError:
    return refused(tmp_path, CAPABILITY, capabilities)[0]


def test_a_result_mapping_that_reads_anything_but_the_provider_s_result_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, SHAPED.replace("${output.location}", "${input.path}"))
    assert error.key == "capabilities.store_file.providers.0.result"
    assert error.message.endswith(
        "'${input.path}' reads 'input': a result mapping sees only the provider's result, named output"
    )
    assert error.hint == "name it output: ${output.id}, ${output.items[0].name}"


def test_an_output_that_is_not_an_object_schema_is_refused(tmp_path: Path) -> None:
    error = _refused(
        tmp_path,
        SHAPED.replace(
            "      type: object\n      properties:\n        stored_at",
            "      type: array\n      properties:\n        stored_at",
        ),
    )
    assert error.key == "capabilities.store_file.output"
    assert "the output schema must have type 'object'" in error.message


async def test_a_result_over_the_cap_cannot_be_mapped_and_says_so(
    tmp_path: Path, upstreams: tuple[Upstream, Upstream]
) -> None:
    """The hub cuts a result over ``limits.max_result_bytes`` to text (its value None): a mapping read
    None, and the capability answered that the result did not fit its output."""
    primary, backup = upstreams
    primary.then(Reply(body={"location": "x" * 2_000}))
    config = write_config(tmp_path, "sqlite+aiosqlite:///:memory:", primary, backup, capabilities=SHAPED)
    config.write_text(config.read_text() + "limits: {max_result_bytes: 1000}\n")
    hub = hub_from(config)
    async with hub:
        with pytest.raises(ConfigurationError) as caught:
            await hub.call(BOT, "capability.store_file", FILE)
    assert "is over the result cap, so providers.0.result (or the output schema) cannot read it" in str(
        caught.value.message
    )
    assert caught.value.hint is not None and "limits.max_result_bytes" in caught.value.hint
    assert len(primary.requests) == 1 and backup.requests == []
