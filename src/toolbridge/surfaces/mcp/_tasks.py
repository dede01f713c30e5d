"""Tasks (the 2025-11-25 extension) passed through between agents and upstreams that both declare them.

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
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import anyio
import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from toolbridge._perform import upstream_read
from toolbridge.connectors.mcp import McpConnector
from toolbridge.connectors.mcp._tasks import CALL_TASK, RELATED_TASK_META_KEY, TaskAsk
from toolbridge.errors import NotFound, ToolbridgeError
from toolbridge.surfaces.mcp._bridge import CallContext
from toolbridge.surfaces.mcp._federation import mcp_connectors, mcp_error
from toolbridge.surfaces.mcp._search import in_search_mode
from toolbridge.surfaces.mcp._wire import INVALID_PARAMS, METHOD_NOT_FOUND

if TYPE_CHECKING:
    import httpx2
    from mcp.server.lowlevel.server import Server

    from toolbridge import Hub, Principal

__all__ = ["TASKS_CAPABILITY", "Tasks", "created_answer"]

logger = logging.getLogger("toolbridge.surfaces.mcp")

STATUS_SEND_TIMEOUT = 2.0
ContextOf = Callable[[ServerRequestContext[Any, Any]], CallContext]

TASKS_CAPABILITY = types.ServerTasksCapability(
    list=types.TasksListCapability(),
    cancel=types.TasksCancelCapability(),
    requests=types.ServerTasksRequestsCapability(
        tools=types.TasksToolsCapability(call=types.TasksCallCapability())
    ),
)


@dataclass(frozen=True, slots=True)
class _Route:
    owner: tuple[str, str | None]
    connector: str
    upstream_id: str
    auth: httpx2.Auth | None
    session: Any
    """The agent's session (where the task's status notifications go)."""


def _owner(principal: Principal) -> tuple[str, str | None]:
    return principal.name, principal.key_id


def created_answer(wire: Mapping[str, Any]) -> HandlerResult:
    """Keep what the ``tools/call`` handler made of a ``CreateTaskResult`` (the hub's value with
    toolbridge's request id) for the middleware, and give the SDK a result it accepts in its place."""
    task = CALL_TASK.get()
    if task is None or task.created is None:
        return dict(wire)
    task.created = {k: v for k, v in wire.items() if k not in ("isError", "resultType")}
    return {"content": []}  # (the middleware answers with the task: the SDK's check knows CallToolResult)


class Tasks:
    """The agents' tasks on upstreams, and the handlers that route their requests."""

    def __init__(self, hub: Hub, context_of: ContextOf, *, max_tasks: int = 10_000) -> None:
        self.hub = hub
        self.context_of = context_of
        self.max_tasks = max_tasks
        self._routes: OrderedDict[str, _Route] = OrderedDict()

    def served(self) -> bool:
        """Whether some upstream takes task-augmented tool calls (then toolbridge declares tasks)."""
        return any(c.augments({"taskSupport": "optional"}) for c in mcp_connectors(self.hub))

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
        server.add_request_handler("tasks/list", types.PaginatedRequestParams, self._list)

    async def _on_call(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        raw = ctx.params if isinstance(ctx.params, Mapping) else {}
        asked = raw.get("task")
        legacy = ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
        if ctx.method != "tools/call" or not isinstance(asked, Mapping) or not legacy:
            return await call_next(ctx)
        if in_search_mode(self.hub, self.context_of(ctx).principal):  # (call_tool wraps what it calls)
            return await call_next(ctx)
        task = TaskAsk(asked)
        token = CALL_TASK.set(task)
        try:
            result = await call_next(ctx)
        finally:
            CALL_TASK.reset(token)
        if task.created is None:
            return result
        return self._remember(ctx, task)

    def _remember(self, ctx: ServerRequestContext[Any, Any], task: TaskAsk) -> dict[str, Any]:
        principal = self.context_of(ctx).principal
        created = dict(task.created or {})
        upstream = dict(created["task"])
        connector = str(task.connector)
        agent_id = f"{connector}/{upstream.get('taskId')}"
        route = _Route(_owner(principal), connector, str(upstream.get("taskId")), task.auth, ctx.session)
        self._routes[agent_id] = route
        while len(self._routes) > self.max_tasks:
            self._routes.popitem(last=False)
        return {**created, "task": {**upstream, "taskId": agent_id}}

    async def _tell(self, connector: str, task: Mapping[str, Any]) -> None:
        """An upstream's ``notifications/tasks/status`` to the agent whose task it is, with its task id (a
        status told before toolbridge had the ``CreateTaskResult`` has no agent yet and is dropped)."""
        agent_id = f"{connector}/{task.get('taskId')}"
        route = self._routes.get(agent_id)
        if route is None:
            return
        said = {"method": "notifications/tasks/status", "params": {**task, "taskId": agent_id}}
        notification = types.TaskStatusNotification.model_validate(said, by_name=False)
        with anyio.move_on_after(STATUS_SEND_TIMEOUT):  # awaited by the upstream's reader: never blocks it
            try:  # (the SDK's notification union leaves tasks/status out; its session sends any)
                await route.session.send_notification(cast(Any, notification))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                logger.info("the agent of task %s is gone; its status was not told", agent_id)

    def _one(self, method: str) -> Callable[[ServerRequestContext[Any, Any], Any], Any]:
        async def handle(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
            _legacy_only(ctx)
            caller = self.context_of(ctx)
            agent_id = str((ctx.params or {}).get("taskId"))
            route = self._routes.get(agent_id)
            if route is not None and route.owner != _owner(caller.principal):
                route = None  # another agent's task: as unknown as one that never was
            where = route.connector if route is not None else agent_id.partition("/")[0]
            try:
                async with self.hub.perform(
                    caller.principal,
                    f"{method} {where}",
                    {"taskId": agent_id},
                    scope=None,
                    request_id=caller.request_id,
                ):
                    if route is None:
                        raise NotFound(f"unknown task {agent_id!r}", hint="tasks/list names your tasks")
                    result = await self._ask(method, route)
            except NotFound as exc:
                raise MCPError(INVALID_PARAMS, exc.message) from exc
            except ToolbridgeError as exc:
                raise mcp_error(exc) from exc
            return _agent_ids(result, {route.upstream_id: agent_id})

        return handle

    async def _ask(self, method: str, route: _Route) -> dict[str, Any]:
        connector = self.hub.connector(route.connector)
        assert isinstance(connector, McpConnector)  # (routes are made for MCP connectors only)
        return await upstream_read(
            self.hub,
            route.connector,
            f"{method} {route.connector}",
            lambda d: connector.task_request(
                method, {"taskId": route.upstream_id}, auth=route.auth, deadline=d
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


def _legacy_only(ctx: ServerRequestContext[Any, Any]) -> None:
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:  # (an extension there, not served yet)
        raise MCPError(METHOD_NOT_FOUND, "tasks are not part of the 2026-07-28 revision", data=ctx.method)


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
