"""A poll trigger against prism serving the Petstore document: one event per item, none on an unchanged
poll, none again from a restarted runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_openapi_prism import prism
from toolbridge import Hub
from toolbridge.settings import parse_settings

from .conftest import Clock

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
SPEC = Path(__file__).parents[2].parent / "shared" / "specs" / "oai-petstore-expanded.v3.0.yaml"
CONFIG = """
connectors:
  pets: {{kind: openapi, spec: "{spec}", base_url: "{base}", cache: false}}
agents:
  poller: {{scopes: ["pets.*"]}}
triggers:
  pets:
    tool: pets.find_pets
    principal: poller
    every: 60
    initial: emit
"""


async def test_poll_trigger_against_prism(tmp_path: Path, sqlite_url: str) -> None:
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is not there (the shared specs folder)")
    with prism(SPEC) as base:
        text = CONFIG.format(spec=SPEC, base=base)
        settings = parse_settings(text, source=tmp_path / "toolbridge.yaml")
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"database": sqlite_url})}
        )
        first = 0
        for restart in range(2):
            hub = Hub.from_settings(settings)
            service = hub.event_service
            assert service is not None and service.triggers is not None
            clock = Clock()
            clock.now += restart * 1000
            service.triggers.clock = clock
            async with hub:
                if restart == 0:
                    await hub.agents.create("poller", ["pets.*"])
                emitted = await service.triggers.run_once()
                clock.now += 61
                again = await service.triggers.run_once()
                events = await service.log.tail(100)
                polls = len(await hub.audit.tail(50, tool="pets.find_pets"))
            assert polls == 2 * (restart + 1)  # every poll reached prism through the hub
            if restart == 0:
                assert emitted >= 1 and emitted == len(events) and again == 0
                assert {e.type for e in events} == {"pets.new"} and all(
                    e.source == "trigger.pets" for e in events
                )
            else:
                assert (emitted, again, len(events)) == (0, 0, first)
            first = len(events)
