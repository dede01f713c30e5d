"""Tasks passed through between agents and upstreams that both declare them, in either era.

toolbridge declares ``capabilities.tasks`` (list, cancel, task-augmented ``tools/call``) to handshake-era
agents when an upstream it federates declares task-augmented tool calls. A ``tools/call`` with
``params.task`` goes through ``Hub.call`` as any call (one audit row) with :data:`CALL_TASK` set; when
the upstream makes it a task, the agent gets the upstream's ``CreateTaskResult`` with the task id
mapped to ``<connector>/<upstream task id>`` (reversible per connector), and the task is remembered
as the caller's. ``tasks/get``, ``tasks/result`` and ``tasks/cancel`` of that id go to that connector's
upstream through ``Hub.perform`` (one audit row each, ``tool`` ``tasks/get <connector>`` …); another
caller's task, or one toolbridge does not know, is an unknown task (``-32602``). ``tasks/list`` lists
the caller's tasks on the upstreams that list theirs. A call the upstream does not make a task (it or
the tool does not support tasks) answers as any call.

A 2026-07-28 agent declares the extension ``io.modelcontextprotocol/tasks`` in a request's client
capabilities; toolbridge declares it in ``server/discover`` while an upstream does. Its tasks take the
same route table (ids, owners, bounds, audit rows, the result cap), through that era's methods:
``tasks/get`` (the result inlined once ``completed``, capped), ``tasks/update`` and ``tasks/cancel``, each
refused with ``-32021`` when the request does not declare the extension. ``tasks/result`` and
``tasks/list`` are not part of that era's extension, nor ``tasks/update`` of the 2025-11-25 tasks.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import anyio
import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, decode_header_value
from mcp_types import CLIENT_CAPABILITIES_META_KEY
from mcp_types.jsonrpc import HEADER_MISMATCH
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from toolbridge._perform import upstream_read
from toolbridge._shape import shape
from toolbridge.connectors._events import CALL_EVENTS, CallEvents
from toolbridge.connectors.mcp import McpConnector
from toolbridge.connectors.mcp._tasks import (
    CALL_TASK,
    RELATED_TASK_META_KEY,
    TASKS_EXTENSION,
    TaskAsk,
    created_task,
    declares_tasks,
)
from toolbridge.errors import NotFound, ToolbridgeError, ToolNotFound
from toolbridge.surfaces.mcp._asks import askable, asker
from toolbridge.surfaces.mcp._bridge import CallContext
from toolbridge.surfaces.mcp._federation import mcp_connectors, mcp_error
from toolbridge.surfaces.mcp._search import in_search_mode
from toolbridge.surfaces.mcp._wire import INVALID_PARAMS, METHOD_NOT_FOUND

if TYPE_CHECKING:
    import httpx2
    from mcp.server.lowlevel.server import Server

    from toolbridge import Hub, Principal

__all__ = ["EARLY_KEPT", "MAX_TASKS", "TASKS_CAPABILITY", "Tasks", "created_answer"]

logger = logging.getLogger("toolbridge.surfaces.mcp")

STATUS_SEND_TIMEOUT = 2.0
MAX_TASKS = 10_000
"""Tasks remembered at most (finished and expired ones are forgotten first)."""
EARLY_KEPT = 256
"""Tasks whose statuses, told before their ``CreateTaskResult``, are kept until it comes (the oldest go)."""
SWEEP_EVERY = 60.0
"""Seconds between looks for expired tasks when the table is not full."""
TERMINAL = frozenset({"completed", "failed", "cancelled"})
MISSING_CAPABILITY = -32021
"""The 2026-07-28 error of a request that needs a client capability it did not declare."""
MODERN_METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})
"""The methods of the 2026-07-28 tasks extension."""
ContextOf = Callable[[ServerRequestContext[Any, Any]], CallContext]

TASKS_CAPABILITY = types.ServerTasksCapability(
    list=types.TasksListCapability(),
    cancel=types.TasksCancelCapability(),
    requests=types.ServerTasksRequestsCapability(
        tools=types.TasksToolsCapability(call=types.TasksCallCapability())
    ),
)


@dataclass(slots=True)
class _Route:
    owner: tuple[str, str | None]
    modern: bool
    """Made by a 2026-07-28 request (the extension's methods reach it), else a 2025-11-25 one."""
    connector: str
    upstream_id: str
    auth: httpx2.Auth | None
    session: Any
    """The agent's session (where the task's status notifications go)."""
    tool: str | None = None
    """The catalog name of the tool the task runs (its ``tasks/result`` is capped as its calls are)."""
    ttl: float | None = None
    """Seconds the upstream keeps the task (its ``ttl``; None: no limit)."""
    expires: float | None = None
    """When (``time.monotonic()``) the ``ttl`` runs out."""
    status: str = "working"
    """The last status heard (a status notification, a ``tasks/get`` or ``tasks/cancel`` answer)."""


@dataclass(frozen=True, slots=True)
class _Gone:
    owner: tuple[str, str | None]
    why: str
    """``expired`` or ``forgotten``."""
    ttl: float | None = None


class _UpdateParams(types.RequestParams):
    """``tasks/update`` (2026-07-28 tasks extension): a task's answers to what it asked."""

    task_id: str
    input_responses: dict[str, Any] = Field(default_factory=dict)


def _owner(principal: Principal) -> tuple[str, str | None]:
    return principal.name, principal.key_id


def _flat(created: Mapping[str, Any], modern: bool) -> dict[str, Any]:
    """The ``Task`` of a ``CreateTaskResult`` (2025-11-25: under ``task``; 2026-07-28: the result itself)."""
    return dict(created if modern else created["task"])


def _with_task(created: Mapping[str, Any], modern: bool, **task: Any) -> dict[str, Any]:
    """A ``CreateTaskResult`` with its ``Task``'s fields set to ``task`` (the agent's id, a known status)."""
    if modern:
        return {**created, **task, "resultType": "task"}
    return {**created, "task": {**created["task"], **task}}


def created_answer(wire: Mapping[str, Any]) -> HandlerResult:
    """Keep what the ``tools/call`` handler made of a ``CreateTaskResult`` (the hub's value with
    toolbridge's request id) for the middleware, and give the SDK a result it accepts in its place."""
    task = CALL_TASK.get()
    if task is None or (task.created is None and not created_task(wire)):  # (a replay: created earlier)
        return dict(wire)
    task.created = {k: v for k, v in wire.items() if k not in ("isError", "resultType")}
    # (the middleware answers with the task: the SDK's check knows CallToolResult)
    return {"content": [], "resultType": "complete"}


class Tasks:
    """The agents' tasks on upstreams, and the handlers that route their requests."""

    def __init__(self, hub: Hub, context_of: ContextOf, *, max_tasks: int | None = None) -> None:
        self.hub = hub
        self.context_of = context_of
        self.max_tasks = MAX_TASKS if max_tasks is None else max_tasks
        self._routes: OrderedDict[str, _Route] = OrderedDict()
        self._gone: OrderedDict[str, _Gone] = OrderedDict()
        """Forgotten tasks (as many as there are routes), so that their ids get a clear answer."""
        self._early: OrderedDict[str, list[Mapping[str, Any]]] = OrderedDict()
        self._swept = time.monotonic()

    def served(self) -> bool:
        """Whether some upstream takes task-augmented tool calls (then toolbridge declares tasks)."""
        return any(c.augments({"taskSupport": "optional"}) for c in mcp_connectors(self.hub))

    def served_modern(self) -> bool:
        """Whether some upstream declares the 2026-07-28 tasks extension (then toolbridge declares it)."""
        return any(c.takes_task_extension() for c in mcp_connectors(self.hub))

    def install(self, server: Server[Any]) -> None:
        if not mcp_connectors(self.hub):
            return
        for connector in mcp_connectors(self.hub):
            connector.on_task_status(self._tell)
        server.middleware.append(self._on_call)
        for method, params in (
            ("tasks/get", types.GetTaskRequestParams),
            ("tasks/result", types.GetTaskPayloadRequestParams),
            ("tasks/cancel", types.CancelTaskRequestParams),
        ):
            server.add_request_handler(method, params, self._one(method))
        server.add_request_handler("tasks/update", _UpdateParams, self._one("tasks/update"))
        server.add_request_handler("tasks/list", types.PaginatedRequestParams, self._list)

    async def _on_call(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        raw = ctx.params if isinstance(ctx.params, Mapping) else {}
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        asked = _declared(raw) if modern else raw.get("task")
        if ctx.method != "tools/call" or not isinstance(asked, Mapping):
            return await call_next(ctx)
        if in_search_mode(self.hub, self.context_of(ctx).principal):  # (call_tool wraps what it calls)
            return await call_next(ctx)
        task = TaskAsk({} if modern else asked, modern=modern)
        asked_at = time.monotonic()  # (the upstream's ttl starts after this: its task is made later)
        token = CALL_TASK.set(task)
        try:
            result = await call_next(ctx)
        finally:
            CALL_TASK.reset(token)
        if task.created is None:
            return result
        if task.connector is None:  # the hub replayed a keyed call that made a task: the same task
            return self._replayed(ctx, task.created, modern)
        agent_id, route, answer, early = self._remember(ctx, task, asked_at)
        for status in early:  # told before the task was the agent's
            await self._send(route, agent_id, status)
        return answer

    def _remember(
        self, ctx: ServerRequestContext[Any, Any], task: TaskAsk, asked_at: float
    ) -> tuple[str, _Route, dict[str, Any], list[Mapping[str, Any]]]:
        """The agent's task id, route and ``CreateTaskResult``, the task remembered as the caller's, and
        the statuses the upstream told of it before. Its ttl is counted from ``asked_at``, when the call
        was sent: never later than the upstream counts it, so toolbridge says "expired" before the
        upstream can have deleted the task, not the upstream's bare "not found". A task whose ttl ran
        out before its answer came is answered all the same (and may already be forgotten as expired)."""
        principal = self.context_of(ctx).principal
        created = dict(task.created or {})
        upstream = _flat(created, task.modern)
        connector = str(task.connector)
        agent_id = f"{connector}/{upstream.get('taskId')}"
        ttl = upstream.get("ttlMs" if task.modern else "ttl")
        seconds = ttl / 1000 if isinstance(ttl, int | float) and not isinstance(ttl, bool) else None
        now = time.monotonic()
        route = self._routes[agent_id] = _Route(
            _owner(principal),
            task.modern,
            connector,
            str(upstream.get("taskId")),
            task.auth,
            ctx.session,
            tool=task.tool,
            ttl=seconds,
            expires=None if seconds is None else asked_at + seconds,
            status=str(upstream.get("status", "working")),
        )
        self._gone.pop(agent_id, None)
        self._make_room(now)
        early = self._early.pop(agent_id, [])
        if early:
            route.status = str(early[-1].get("status", "working"))
        return agent_id, route, _with_task(created, task.modern, taskId=agent_id), early

    def _make_room(self, now: float) -> None:
        """Forget expired tasks (when the table is full, or a minute after the last look), then, while
        more than ``max_tasks`` are left, finished tasks and then the oldest."""
        if len(self._routes) > self.max_tasks or now - self._swept >= SWEEP_EVERY:
            self._swept = now
            expired = [a for a, r in self._routes.items() if r.expires is not None and r.expires <= now]
            for agent_id in expired:
                self._forget(agent_id, "expired")
        if len(self._routes) > self.max_tasks:
            for agent_id in [a for a, r in self._routes.items() if r.status in TERMINAL]:
                self._forget(agent_id, "forgotten")
                if len(self._routes) <= self.max_tasks:
                    break
        while len(self._routes) > self.max_tasks:
            self._forget(next(iter(self._routes)), "forgotten")

    def _forget(self, agent_id: str, why: str) -> None:
        route = self._routes.pop(agent_id)
        self._gone[agent_id] = _Gone(route.owner, why, route.ttl)
        while len(self._gone) > self.max_tasks:
            self._gone.popitem(last=False)

    def _replayed(
        self, ctx: ServerRequestContext[Any, Any], created: Mapping[str, Any], modern: bool
    ) -> dict[str, Any]:
        """The ``CreateTaskResult`` a replayed call answers with: the first call's task, by the id the
        agent was given (the upstream made one task; a replay never asks it for another)."""
        owner = _owner(self.context_of(ctx).principal)
        modern = modern and "task" not in created  # (the first call's era made its shape)
        upstream_id = str(_flat(created, modern).get("taskId"))
        for agent_id, route in self._routes.items():
            if route.owner == owner and route.upstream_id == upstream_id:
                return _with_task(created, modern, taskId=agent_id, status=route.status)
        raise MCPError(
            INVALID_PARAMS,
            f"the first call with this idempotency key made the task {upstream_id!r}, which toolbridge "
            "no longer knows (it expired, was forgotten, or toolbridge restarted); it is not run again "
            "as a second task: call with a new idempotency key to start one",
        )

    async def _tell(self, connector: str, task: Mapping[str, Any]) -> None:
        """An upstream's ``notifications/tasks/status`` to the agent whose task it is, with its task id (a
        status told before toolbridge had the ``CreateTaskResult`` is kept until it comes)."""
        agent_id = f"{connector}/{task.get('taskId')}"
        route = self._routes.get(agent_id)
        if route is None:
            if agent_id not in self._gone:
                self._early.setdefault(agent_id, []).append(task)
                while len(self._early) > EARLY_KEPT:
                    self._early.popitem(last=False)
            return
        route.status = str(task.get("status", route.status))
        await self._send(route, agent_id, task)

    async def _send(self, route: _Route, agent_id: str, task: Mapping[str, Any]) -> None:
        said = {"method": "notifications/tasks/status", "params": {**task, "taskId": agent_id}}
        notification = types.TaskStatusNotification.model_validate(said, by_name=False)
        with anyio.move_on_after(STATUS_SEND_TIMEOUT):  # awaited by the upstream's reader: never blocks it
            try:  # (the SDK's notification union leaves tasks/status out; its session sends any)
                await route.session.send_notification(cast(Any, notification))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                logger.info("the agent of task %s is gone; its status was not told", agent_id)

    def _find(
        self, agent_id: str, owner: tuple[str, str | None], *, modern: bool = False
    ) -> _Route | NotFound:
        """The route of the caller's task ``agent_id``, or why there is none (another agent's task is as
        unknown as one that never was)."""
        route = self._routes.get(agent_id)
        if route is not None and route.expires is not None and route.expires <= time.monotonic():
            self._forget(agent_id, "expired")
            route = None
        if route is not None and route.owner == owner:
            return route
        gone = self._gone.get(agent_id)
        if gone is None or gone.owner != owner:
            where = "the tools/call that made it answered its id" if modern else "tasks/list names your tasks"
            return NotFound(f"unknown task {agent_id!r}", hint=where)
        if gone.why == "expired":
            return NotFound(
                f"task {agent_id!r} has expired: its ttl of {gone.ttl:g} s has passed, after which its "
                "upstream deletes it; toolbridge has forgotten it",
                hint="call the tool again for a new task",
            )
        return NotFound(
            f"task {agent_id!r} was forgotten: toolbridge remembers {self.max_tasks:,} tasks at most "
            "(finished and expired ones are forgotten first); its upstream may still have it",
            hint="call the tool again for a new task",
        )

    def _expired_meanwhile(self, agent_id: str, route: _Route, modern: bool) -> NotFound | None:
        """That the task expired, when the upstream failed a request about it that toolbridge forwarded
        while its ttl ran and that reached the upstream after it ran out (the upstream may have deleted
        the task meanwhile: its "not found" is no news); None while the ttl still runs."""
        if route.expires is None or route.expires > time.monotonic():
            return None
        found = self._find(agent_id, route.owner, modern=modern)
        return found if isinstance(found, NotFound) else None

    def _one(self, method: str) -> Callable[[ServerRequestContext[Any, Any], Any], Any]:
        async def handle(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
            modern = _era_allows(ctx, method)
            caller = self.context_of(ctx)
            raw = ctx.params or {}
            agent_id = str(raw.get("taskId"))
            if modern:
                _routed_by_name(ctx, agent_id)
            found = self._find(agent_id, _owner(caller.principal), modern=modern)
            if isinstance(found, _Route) and found.modern != modern:
                made, era = ("2026-07-28", "with the tasks extension") if found.modern else ("2025-11-25", "")
                found = NotFound(
                    f"task {agent_id!r} was made by a {made} request; ask about it in that protocol "
                    f"era {era}".rstrip(),
                    hint="the two eras' task methods differ (2026-07-28: tasks/get inlines the result)",
                )
            route = found if isinstance(found, _Route) else None
            where = route.connector if route is not None else agent_id.partition("/")[0]
            try:
                async with self.hub.perform(
                    caller.principal,
                    f"{method} {where}",
                    {"taskId": agent_id},
                    scope=None,
                    request_id=caller.request_id,
                ):
                    if isinstance(found, NotFound):
                        raise found
                    token = CALL_EVENTS.set(_asking(ctx, agent_id) if method == "tasks/result" else None)
                    try:
                        extra = (
                            {"inputResponses": raw.get("inputResponses") or {}}
                            if method == "tasks/update"
                            else {}
                        )
                        result = await self._ask(method, found, extra)
                    except ToolbridgeError as exc:
                        if (expired := self._expired_meanwhile(agent_id, found, modern)) is None:
                            raise
                        raise expired from exc
                    finally:
                        CALL_EVENTS.reset(token)
            except NotFound as exc:
                raise MCPError(INVALID_PARAMS, exc.message) from exc
            except ToolbridgeError as exc:
                raise mcp_error(exc) from exc
            assert route is not None  # (an unknown task was raised above)
            if method != "tasks/result" and isinstance(result.get("status"), str):
                route.status = result["status"]
            if method == "tasks/result":
                result = self._capped(caller.principal, route, result)
            elif modern and isinstance(result.get("result"), dict):  # a completed task's, inlined
                result = {**result, "result": self._capped(caller.principal, route, result["result"])}
            return _agent_ids(result, {route.upstream_id: agent_id})

        return handle

    def _capped(self, principal: Principal, route: _Route, result: dict[str, Any]) -> dict[str, Any]:
        """A ``tasks/result`` within ``limits.max_result_bytes``, cut as a call's result is: the marker
        and the part kept as text (``isError`` when the tool declares an output schema, which a cut
        result cannot conform to); the related task in ``_meta`` kept."""
        try:
            tool = self.hub.get_tool(principal, route.tool) if route.tool is not None else None
        except ToolNotFound:
            tool = None
        _, text, truncated, _ = shape(result, max_bytes=self.hub.limits.max_result_bytes, tool=tool)
        if not truncated:
            return result
        meta = result.get("_meta")
        related = meta.get(RELATED_TASK_META_KEY) if isinstance(meta, dict) else None
        return {
            "content": [{"type": "text", "text": text}],
            "isError": tool is not None and tool.output_schema is not None,
            **({"_meta": {RELATED_TASK_META_KEY: related}} if related is not None else {}),
        }

    async def _ask(self, method: str, route: _Route, extra: Mapping[str, Any]) -> dict[str, Any]:
        connector = self.hub.connector(route.connector)
        assert isinstance(connector, McpConnector)  # (routes are made for MCP connectors only)
        params = {"taskId": route.upstream_id, **extra}
        return await upstream_read(
            self.hub,
            route.connector,
            f"{method} {route.connector}",
            lambda d: connector.task_request(
                method, params, auth=route.auth, deadline=d, modern=route.modern
            ),
        )

    async def _list(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        """The caller's tasks, as the upstreams that list theirs have them (one audit row)."""
        _legacy_only(ctx)
        caller = self.context_of(ctx)
        owner = _owner(caller.principal)
        mine: dict[str, dict[str, _Route]] = {}
        for agent_id, route in self._routes.items():
            if route.owner == owner:
                mine.setdefault(route.connector, {})[agent_id] = route
        tasks: list[Any] = []
        try:
            async with self.hub.perform(
                caller.principal, "tasks/list", {}, scope=None, request_id=caller.request_id
            ):
                for name, routes in sorted(mine.items()):
                    tasks += await self._listed(name, routes)
        except ToolbridgeError as exc:
            raise mcp_error(exc) from exc
        return {"tasks": tasks}

    async def _listed(self, name: str, routes: Mapping[str, _Route]) -> list[Any]:
        """The tasks of ``routes`` that the upstream of ``name`` lists (none if it lists none)."""
        connector = self.hub.connector(name)
        if not isinstance(connector, McpConnector) or not connector.lists_tasks():
            return []
        auth = next(iter(routes.values())).auth
        ids = {route.upstream_id: agent_id for agent_id, route in routes.items()}
        listed = await upstream_read(
            self.hub,
            name,
            f"tasks/list {name}",
            lambda d: connector.task_request("tasks/list", {}, auth=auth, deadline=d),
        )
        raw = listed.get("tasks")
        found: list[Any] = raw if isinstance(raw, list) else []
        return [
            {**t, "taskId": ids[str(t.get("taskId"))]}
            for t in found
            if isinstance(t, dict) and str(t.get("taskId")) in ids
        ]


def _asking(ctx: ServerRequestContext[Any, Any], agent_id: str) -> CallEvents:
    """How the upstream's requests for a task (an ``input_required`` task's elicitation, sampling …, sent
    while the agent waits on its ``tasks/result``) reach the agent: as a call's would, on the request's
    own stream over stdio and on the session's stream over HTTP, with the related task's id mapped."""
    related = None if ctx.request is not None or ctx.request_id is None else str(ctx.request_id)
    ask = asker(ctx, related)

    async def ask_for_task(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        meta = params.get("_meta")
        if isinstance(meta, Mapping) and isinstance(meta.get(RELATED_TASK_META_KEY), Mapping):
            related_task = {**meta[RELATED_TASK_META_KEY], "taskId": agent_id}
            params = {**params, "_meta": {**meta, RELATED_TASK_META_KEY: related_task}}
        return await ask(method, params)

    return CallEvents(None, ask_for_task, askable(ctx))


def _declared(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The tasks extension's settings, when a 2026-07-28 request's client capabilities declare it."""
    meta = params.get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(capabilities, Mapping) or not declares_tasks(capabilities):
        return None
    settings: Mapping[str, Any] = capabilities["extensions"][TASKS_EXTENSION]
    return settings


def _era_allows(ctx: ServerRequestContext[Any, Any], method: str) -> bool:
    """Whether the request is of the 2026-07-28 era, once it is known that its era has ``method`` and
    (2026-07-28) that it declares the tasks extension."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        if method == "tasks/update":
            raise MCPError(METHOD_NOT_FOUND, "tasks/update is a method of the 2026-07-28 tasks extension")
        return False
    if method not in MODERN_METHODS:
        _legacy_only(ctx)
    if _declared(ctx.params or {}) is None:
        raise MCPError(
            MISSING_CAPABILITY,
            f"{method} is a method of the tasks extension ({TASKS_EXTENSION}); the request did not "
            "declare it in its client capabilities",
            data={"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
        )
    return True


def _routed_by_name(ctx: ServerRequestContext[Any, Any], task_id: str) -> None:
    """Refuse a task request whose ``Mcp-Name`` header (the task id, by which intermediaries route it)
    is not its ``taskId``, as the extension asks of a server that reads the body."""
    headers = getattr(ctx.request, "headers", None)
    named = headers.get(MCP_NAME_HEADER) if headers is not None else None
    if named is not None and decode_header_value(named) != task_id:
        raise MCPError(HEADER_MISMATCH, f"the {MCP_NAME_HEADER} header does not match the request's taskId")


def _legacy_only(ctx: ServerRequestContext[Any, Any]) -> None:
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        raise MCPError(
            METHOD_NOT_FOUND,
            f"{ctx.method} is not part of the 2026-07-28 tasks extension: tasks/get answers a task's "
            "status and, once it completed, its result",
            data=ctx.method,
        )


def _agent_ids(result: Mapping[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    """An upstream's answer about a task with the agent's task id in place of the upstream's (the
    ``taskId`` of a ``Task``, the related task in ``_meta``)."""
    answer = dict(result)
    if str(answer.get("taskId")) in ids:
        answer["taskId"] = ids[str(answer["taskId"])]
    meta = answer.get("_meta")
    related = meta.get(RELATED_TASK_META_KEY) if isinstance(meta, dict) else None
    if isinstance(meta, dict) and isinstance(related, dict) and str(related.get("taskId")) in ids:
        answer["_meta"] = {**meta, RELATED_TASK_META_KEY: {**related, "taskId": ids[str(related["taskId"])]}}
    return answer
