"""describe_tool's drill-down: every part of a tool's arguments can be asked for, whole and within budget.

Found by an outside probe: ``property='customer'`` of a Python tool answered a ``$ref`` to a ``$defs``
it did not carry, ``property='input.items'`` (the hint's own example) was "no argument", and OpenAI's
``property='input'`` answered 56,546 bytes marked compact with no stubs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Literal, NotRequired

import pytest
from pydantic import BaseModel, Field, create_model
from typing_extensions import TypedDict

from tests._specs import vendor_spec
from toolbridge import Tool
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.surfaces.mcp._search import DESCRIBE_BUDGET, describe_document

from .conftest import Served, make_hub, serve

pytestmark = pytest.mark.anyio
DOCUMENTS = ["slack-web.v2.json", "twilio-api-v2010.json", "pagerduty-rest.json", "openai.yaml"]


class Address(TypedDict):
    street: str
    city: str
    zip: NotRequired[str]


class Customer(TypedDict):
    name: str
    address: Address


@dataclasses.dataclass
class Line:
    sku: str
    quantity: int = 1


class Folder(BaseModel):
    name: str
    folders: list[Folder] = []


Widget: Any = create_model(  # forty settings of thirty values each: 9 KB
    "Widget",
    **{
        f"field_{i}": (
            Literal[tuple(f"v{i}_{j}" for j in range(30))],
            Field(description=f"the {i}th setting of the widget, which controls behaviour number {i}"),
        )
        for i in range(40)
    },
)


def size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def stubs(schema: Any) -> list[str]:
    return re.findall(r"describe it with property='([^']+)'", json.dumps(schema))


def dangling(schema: Any) -> list[str]:
    """The ``$ref`` of ``schema`` that point at nothing inside it."""

    def resolve(pointer: str) -> Any:
        node = schema
        for token in pointer.split("/"):
            node = node.get(token) if isinstance(node, dict) else None
        return node

    return [r for r in re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(schema)) if resolve(r) is None]


def walk(tool: Tool) -> int:
    """Follow every stub of ``tool``'s compact definition, and of each answer, literally; each answer
    must fit the budget and carry what its ``$ref`` point at. The number of answers."""
    top = describe_document(tool)["inputSchema"]
    assert size(top) <= DESCRIBE_BUDGET and not dangling(top), tool.name
    pending, seen = stubs(top), set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        answer = describe_document(tool, path=path)["schema"]
        assert size(answer) <= DESCRIBE_BUDGET, (tool.name, path, size(answer))
        assert not dangling(answer), (tool.name, path, dangling(answer))
        pending += stubs(answer)
    return len(seen)


@pytest.fixture
async def shop() -> Any:
    hub = make_hub()

    @hub.tool(connector="shop")
    def create_order(customer: Customer, lines: list[Line], folder: Folder, widget: Widget) -> str:
        """Create an order.

        Args:
            customer: who orders.
            lines: what is ordered.
            folder: where the order is filed.
            widget: how the widget is set up.
        """
        return "o1"

    hub.tool_modes["seeker"] = "search"
    async with serve(hub) as served:
        served.keys["seeker"] = await hub.agents.create("seeker", scopes=["shop.*"])
        yield served


async def describe(served: Served, arguments: dict[str, Any]) -> dict[str, Any]:
    params = {"name": "toolbridge.describe_tool", "arguments": arguments}
    response = await served.modern("tools/call", params, agent="seeker")
    result = response.json()["result"]
    assert result["isError"] is False, result
    return result["structuredContent"]  # type: ignore[no-any-return]


async def test_a_python_tools_nested_types_can_be_asked_for(shop: Served) -> None:
    customer = (await describe(shop, {"name": "shop.create_order", "property": "customer"}))["schema"]
    assert set(customer["properties"]) == {"name", "address"} and not dangling(customer)
    assert customer["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert customer["$defs"]["Address"]["required"] == ["street", "city"]
    address = await describe(shop, {"name": "shop.create_order", "property": "customer.address.city"})
    assert address["schema"] == {"type": "string"}
    line = (await describe(shop, {"name": "shop.create_order", "property": "lines.items"}))["schema"]
    assert set(line["properties"]) == {"sku", "quantity"}
    nested = await describe(shop, {"name": "shop.create_order", "property": "folder.folders.items.folders"})
    assert nested["schema"]["items"] == {"$ref": "#/$defs/Folder"} and not dangling(nested["schema"])


async def test_the_stubs_of_a_python_tool_lead_to_what_they_left_out(shop: Served) -> None:
    """The compact form's stub said "describe it with property='widget'", which gave a dangling $ref."""
    top = await describe(shop, {"name": "shop.create_order"})
    assert "widget" in stubs(top["inputSchema"])
    widget = await describe(shop, {"name": "shop.create_order", "property": "widget"})
    assert widget["compact"] is True and size(widget["schema"]) <= DESCRIBE_BUDGET
    assert "field_0" in widget["schema"]["properties"] and not dangling(widget["schema"])
    assert walk(shop.hub.catalog.get("shop.create_order")) >= 1


def test_openai_input_items_and_the_budget() -> None:
    connector = OpenAPIConnector.from_spec(
        "openai", vendor_spec("openai.yaml"), base_url="http://127.0.0.1:9"
    )
    tool = {t.name: t for t in connector.tools()}["openai.create_response"]
    items = describe_document(tool, path="input.items")["schema"]
    assert len(items["anyOf"]) >= 3 and "role" in items["anyOf"][0]["properties"]  # kinds of input item
    answer = describe_document(tool, path="input")
    assert answer["compact"] is True and size(answer["schema"]) <= DESCRIBE_BUDGET
    assert answer["schema"]["anyOf"][0]["type"] == "string" and stubs(answer["schema"])
    assert all(p.startswith("input.") for p in stubs(answer["schema"]))


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_stub_of_four_public_apis_can_be_followed(document: str) -> None:
    """All tools, all stubs, recursively (openai.yaml: about 350 answers, a few seconds)."""
    connector = OpenAPIConnector.from_spec("api", vendor_spec(document), base_url="http://127.0.0.1:9")
    answers = sum(walk(tool) for tool in connector.tools())
    assert answers >= {"openai.yaml": 300}.get(document, 0)
