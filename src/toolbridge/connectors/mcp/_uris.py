"""Resource URIs of an upstream, namespaced per connector so two servers' ``demo://…`` never collide.

An upstream URI ``U`` of connector ``C`` is ``toolbridge://C/U`` for agents: reversible (strip the
prefix), valid for any URI (``file:///x``, ``urn:isbn:1``, templates such as ``demo://r/{id}``), and a
scheme no client fetches by itself, so a read always comes back through toolbridge to ``C``. Every URI
an upstream states is mapped out (listed resources and templates, read contents, resource links and
embedded resources in tool results, update notifications) and every URI an agent sends is mapped back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["inward", "outward", "outward_content", "outward_template", "prefix"]


def prefix(connector: str) -> str:
    """The prefix of ``connector``'s URIs; none for an empty name (a connector mounted unprefixed)."""
    return f"toolbridge://{connector}/" if connector else ""


def outward(connector: str, uri: str) -> str:
    """The agent's URI for the upstream's ``uri``."""
    return prefix(connector) + uri


def inward(connector: str, uri: str) -> str:
    """The upstream's URI for an agent's ``uri`` (one without this connector's prefix is sent as it is)."""
    start = prefix(connector)
    return uri[len(start) :] if start and uri.startswith(start) else uri


def outward_template(connector: str, template: Mapping[str, Any]) -> dict[str, Any]:
    raw = template.get("uriTemplate")
    return {**template, "uriTemplate": outward(connector, raw)} if isinstance(raw, str) else dict(template)


def outward_content(connector: str, blocks: object) -> object:
    """Content blocks (a tool result's ``content``, a read's ``contents``, a prompt's messages) with the
    URIs of resource links and embedded resources mapped out; anything else is left as it is."""
    if not isinstance(blocks, list):
        return blocks
    return [_block(connector, block) for block in blocks]


def _block(connector: str, block: object) -> object:
    if not isinstance(block, dict):
        return block
    if isinstance(block.get("uri"), str):  # a resource link, or one item of a read's contents
        block = {**block, "uri": outward(connector, block["uri"])}
    resource = block.get("resource")
    if isinstance(resource, dict) and isinstance(resource.get("uri"), str):  # an embedded resource
        block = {**block, "resource": {**resource, "uri": outward(connector, resource["uri"])}}
    content = block.get("content")
    if isinstance(content, dict):  # a prompt message
        block = {**block, "content": _block(connector, content)}
    return block
