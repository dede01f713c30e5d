"""Prompts and resources of an upstream server, federated beside its tools.

Prompts are renamed like tools (``connector.prompt``); resource URIs are namespaced per connector
(``toolbridge://connector/URI``, see ``_uris``), so a read goes to the connector whose prefix it carries.
A URI without a prefix (an agent that kept an upstream's own URI) goes to the connector that listed it,
or one whose resources or templates have its scheme. :class:`FederatedRequests` makes the requests.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2
from mcp_types.methods import is_input_required

from toolbridge._redact import redact_error, redact_value
from toolbridge._suggest import close_matches
from toolbridge.connectors._input import CALL_INPUT
from toolbridge.connectors.mcp._answers import checked_input, own_answer
from toolbridge.connectors.mcp._listen import Watched
from toolbridge.connectors.mcp._naming import catalog_names
from toolbridge.connectors.mcp._session import RpcError, Session
from toolbridge.connectors.mcp._tasks import without_tasks
from toolbridge.connectors.mcp._uris import inward, outward, outward_content, outward_template, prefix
from toolbridge.errors import ToolbridgeError, ToolNotFound

if TYPE_CHECKING:
    from toolbridge.connectors.mcp._inbound import Inbound

__all__ = ["Extras", "FederatedRequests", "discover_extras"]

logger = logging.getLogger("toolbridge.connectors.mcp")


@dataclass(frozen=True, slots=True)
class Extras:
    """What a server offers besides tools, as wire objects (prompt names and URIs already namespaced)."""

    prompts: Mapping[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    """Catalog name → (upstream name, ``Prompt`` object)."""
    resources: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """Namespaced URI → ``Resource`` object (with that URI)."""
    templates: tuple[dict[str, Any], ...] = ()
    namespace: str = ""
    """The prefix of this connector's URIs (``toolbridge://connector/``)."""

    def owns(self, uri: str) -> bool:
        """Whether a read of ``uri`` belongs to this server: its prefix, else (an upstream's own URI) one
        it listed or the scheme of what it lists."""
        if self.namespace and uri.startswith(self.namespace):
            return True
        listed = [u[len(self.namespace) :] for u in self.resources]
        if uri in listed:
            return True
        scheme = urlsplit(uri).scheme
        listed += [str(t.get("uriTemplate", ""))[len(self.namespace) :] for t in self.templates]
        return bool(scheme) and any(urlsplit(u).scheme == scheme for u in listed)


async def discover_extras(
    session: Session,
    connector: str,
    auth: httpx2.Auth | None = None,
    *,
    noted: set[str] | None = None,
    secrets: Sequence[str] = (),
) -> Extras:
    """List prompts, resources and resource templates the server says it has (its capabilities), with
    ``secrets`` (every form of what the upstream was sent) masked in them, as in its answers.

    These lists are optional: one the server answers with a JSON-RPC error (a server that declares
    ``resources`` without serving ``resources/templates/list`` answers -32601) counts as empty, so the
    session and its tools are kept. The error is logged once per method (``noted`` remembers which).
    """
    prompts: dict[str, tuple[str, dict[str, Any]]] = {}
    if "prompts" in session.capabilities:
        listed = await _optional(session, "prompts/list", "prompts", auth, noted, secrets)
        by_upstream = {str(p["name"]): p for p in listed if isinstance(p.get("name"), str)}
        for upstream, name in catalog_names(connector, by_upstream).items():
            prompts[name] = (upstream, {**by_upstream[upstream], "name": name})
    resources: dict[str, dict[str, Any]] = {}
    templates: tuple[dict[str, Any], ...] = ()
    if "resources" in session.capabilities:
        for item in await _optional(session, "resources/list", "resources", auth, noted, secrets):
            if isinstance(item.get("uri"), str):
                uri = outward(connector, item["uri"])
                resources[uri] = {**item, "uri": uri}
        listed_templates = await _optional(
            session, "resources/templates/list", "resourceTemplates", auth, noted, secrets
        )
        templates = tuple(outward_template(connector, t) for t in listed_templates)
    return Extras(prompts, resources, templates, prefix(connector))


async def _optional(
    session: Session,
    method: str,
    key: str,
    auth: httpx2.Auth | None,
    noted: set[str] | None,
    secrets: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Every item of an optional list (``secrets`` masked); none when the server answers it with a
    JSON-RPC error."""
    try:
        listed: list[dict[str, Any]] = redact_value(await session.list_all(method, key, auth=auth), secrets)
        return listed
    except RpcError as exc:
        if noted is None or method not in noted:
            logger.warning(
                "%s declares the %r capability but answered %r with an error (%s): toolbridge lists no "
                "%s from it and keeps the session (its tools stay usable)",
                session.channel.describe,
                method.split("/")[0],
                method,
                exc,
                key,
            )
        if noted is not None:
            noted.add(method)
        return []


class FederatedRequests:
    """Prompt, resource and completion requests to the upstream (a part of ``McpConnector``)."""

    _name: str
    _namespace: str
    """The prefix of prompt names and URIs (the connector's name; empty when mounted unprefixed)."""
    extras: Extras
    request: Callable[..., Awaitable[dict[str, Any]]]
    _default_auth: Callable[[], Awaitable[httpx2.Auth | None]]
    """The credentials of the connector's default connection (None: the upstream takes none)."""
    _stateless: bool
    _watched: Watched
    """URIs agents subscribed to: a stateless-era upstream tells their updates on its listen stream."""
    _inbound: Inbound
    """Knows the forms of every secret the upstream was sent (masked in what it answers)."""

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str], *, deadline: float | None = None
    ) -> Any:
        """``prompts/get`` of a federated prompt (``connector.prompt``), as the upstream answers it."""
        entry = self.extras.prompts.get(name)
        if entry is None:
            raise ToolNotFound(name, suggestions=close_matches(name, self.extras.prompts))
        params = {"name": entry[0], "arguments": dict(arguments)}
        result = await self._asking("prompts/get", params, f"the upstream prompt {name!r}", deadline)
        if "messages" in result:
            result["messages"] = outward_content(self._namespace, result["messages"])
        return result

    async def read_resource(self, uri: str, *, deadline: float | None = None) -> Any:
        """``resources/read`` of an upstream resource, as the upstream answers it (URIs namespaced)."""
        own = inward(self._namespace, uri)
        result = await self._asking(
            "resources/read", {"uri": own}, f"the upstream resource {own!r}", deadline
        )
        if "contents" in result:
            result["contents"] = outward_content(self._namespace, result["contents"])
        return result

    async def _asking(
        self, method: str, params: Mapping[str, Any], what: str, deadline: float | None
    ) -> dict[str, Any]:
        """A request whose upstream may ask the agent for input (``input_required``): the agent's answers
        and capabilities go with it (:data:`CALL_INPUT`), and the result is relayed only to an agent that
        can answer it."""
        agent = CALL_INPUT.get()
        params = {**params, **agent.params()} if agent is not None else params
        result = await self._masked(
            method,
            params,
            auth=await self._default_auth(),
            deadline=deadline,
            capabilities=without_tasks(agent.capabilities) if agent else None,  # (tools/call only)
        )
        result = own_answer(result)
        return checked_input(result, what, agent) if is_input_required(result) else result

    async def _masked(self, method: str, params: Mapping[str, Any], **options: Any) -> dict[str, Any]:
        """:attr:`request`, with every secret the upstream was sent masked in its answer or its error (a
        tool call's are masked by the hub; a prompt, a resource or a completion is no tool call)."""
        try:
            result = await self.request(method, params, **options)
        except ToolbridgeError as exc:
            redact_error(exc, self._inbound.secret_forms)
            raise
        secrets = self._inbound.secret_forms
        return redact_value(result, secrets) if secrets else result

    async def complete(self, params: Mapping[str, Any], *, deadline: float | None = None) -> Any:
        """``completion/complete`` for a federated prompt's argument or a resource template's variable.

        A prompt reference names the catalog prompt (``connector.prompt``), a resource reference the
        namespaced template; they go upstream under the upstream's own name and URI. Everything else in
        ``params`` is passed as the agent sent it.
        """
        ref = dict(params.get("ref") or {})
        if ref.get("type") == "ref/prompt":
            entry = self.extras.prompts.get(str(ref.get("name")))
            if entry is None:
                raise ToolNotFound(
                    str(ref.get("name")), suggestions=close_matches(str(ref.get("name")), self.extras.prompts)
                )
            ref["name"] = entry[0]
        elif isinstance(ref.get("uri"), str):
            ref["uri"] = inward(self._namespace, ref["uri"])
        auth = await self._default_auth()
        return own_answer(
            await self._masked("completion/complete", {**params, "ref": ref}, auth=auth, deadline=deadline)
        )

    async def subscribe_resource(self, uri: str, *, deadline: float | None = None) -> None:
        """Ask the upstream to report changes of ``uri`` (its ``resources/updated`` reach ``on_event``)."""
        own = inward(self._namespace, uri)
        if self._stateless:  # no resources/subscribe in that era: the listen stream carries them
            self._watched.add(own)
            return
        auth = await self._default_auth()
        await self.request("resources/subscribe", {"uri": own}, auth=auth, deadline=deadline)

    async def unsubscribe_resource(self, uri: str, *, deadline: float | None = None) -> None:
        own = inward(self._namespace, uri)
        if self._stateless:
            self._watched.discard(own)
            return
        auth = await self._default_auth()
        await self.request("resources/unsubscribe", {"uri": own}, auth=auth, deadline=deadline)
