"""Tasks of an upstream MCP server, passed through to agents: the 2025-11-25 ones (SEP-1686) and the
2026-07-28 extension ``io.modelcontextprotocol/tasks`` (SEP-2663).

An agent that wants a ``tools/call`` run as a task sends ``params.task``; the MCP surface sets
:data:`CALL_TASK` around ``Hub.call`` for it. When the upstream declares task-augmented tool calls
(``capabilities.tasks.requests.tools.call``) and the tool allows them (``execution.taskSupport``
``optional`` or ``required``), the connector sends ``task`` on, and the upstream answers with a
``CreateTaskResult`` instead of the tool's result; the connector hands it back (:attr:`TaskAsk.created`)
with the credentials that signed the call, which sign the task's later requests too. Otherwise the
call runs as any call. ``tasks/get``, ``tasks/result``, ``tasks/cancel`` and ``tasks/list`` then go to
the upstream with :meth:`TaskRequests.task_request`.

In the 2026-07-28 era the agent declares the extension in its request's client capabilities instead
(:attr:`TaskAsk.modern`); when the upstream declares it too (``capabilities.extensions`` of its
``server/discover``), the call goes upstream with the agent's declaration and the upstream may answer
``resultType: "task"`` (a flat ``Task``); otherwise the declaration is taken out of what the upstream is
told, so it never makes a task toolbridge cannot route. That era's task methods are ``tasks/get`` (the
result inlined once ``completed``), ``tasks/update`` (``inputResponses``) and ``tasks/cancel``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx2

from toolbridge.connectors._events import CALL_EVENTS
from toolbridge.connectors.mcp._answers import own_answer
from toolbridge.connectors.mcp._inbound import RELATED_TASK_META_KEY, Inbound
from toolbridge.connectors.mcp._uris import outward_content

__all__ = [
    "CALL_TASK",
    "RELATED_TASK_META_KEY",
    "TaskAsk",
    "TaskListener",
    "TASKS_EXTENSION",
    "TaskRequests",
    "augments_calls",
    "created_task",
    "declares_tasks",
    "without_tasks",
]

TASK_METHODS = ("tasks/get", "tasks/result", "tasks/cancel")
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
"""The 2026-07-28 tasks extension's identifier (in ``capabilities.extensions``)."""


@dataclass(slots=True)
class TaskAsk:
    """An agent's request that its call run as a task, and what became of it."""

    metadata: Mapping[str, Any]
    """The agent's ``params.task`` (``ttl``), sent upstream as it came."""
    created: dict[str, Any] | None = None
    """The upstream's ``CreateTaskResult``, when it made the call a task."""
    auth: httpx2.Auth | None = None
    """The credentials that signed the call (they sign the task's requests too)."""
    connector: str | None = None
    """The connector whose upstream runs the task."""
    tool: str | None = None
    """The catalog name of the tool the task runs."""
    modern: bool = False
    """A 2026-07-28 agent's (it declared the extension; the upstream needs to declare it too)."""


CALL_TASK: ContextVar[TaskAsk | None] = ContextVar("toolbridge_call_task", default=None)


def augments_calls(capabilities: Mapping[str, Any]) -> bool:
    """Whether a server's (or client's) capabilities declare task-augmented ``tools/call``."""
    tasks = capabilities.get("tasks")
    requests = tasks.get("requests") if isinstance(tasks, Mapping) else None
    tools = requests.get("tools") if isinstance(requests, Mapping) else None
    return isinstance(tools, Mapping) and isinstance(tools.get("call"), Mapping)


def declares_tasks(capabilities: object) -> bool:
    """Whether client or server capabilities declare the 2026-07-28 tasks extension."""
    extensions = capabilities.get("extensions") if isinstance(capabilities, Mapping) else None
    return isinstance(extensions, Mapping) and isinstance(extensions.get(TASKS_EXTENSION), Mapping)


def without_tasks(capabilities: Mapping[str, Any]) -> Mapping[str, Any]:
    """A client's capabilities without the tasks extension (told to an upstream that must not make a task)."""
    if not declares_tasks(capabilities):
        return capabilities
    extensions = {k: v for k, v in capabilities["extensions"].items() if k != TASKS_EXTENSION}
    return {**capabilities, "extensions": extensions}


def task_support(listed_execution: object) -> str:
    """A tool's ``execution.taskSupport`` (absent: ``forbidden``)."""
    if isinstance(listed_execution, Mapping):
        support = listed_execution.get("taskSupport")
        if isinstance(support, str):
            return support
    return "forbidden"


def created_task(result: Mapping[str, Any]) -> bool:
    """Whether a ``tools/call`` answer is a ``CreateTaskResult`` (a ``task``, no ``content``; in the
    2026-07-28 extension ``resultType: "task"``)."""
    if result.get("resultType") == "task":
        return True
    return isinstance(result.get("task"), Mapping) and "content" not in result


TaskListener = Callable[[str, Mapping[str, Any]], Awaitable[None]]
"""Takes a connector's name and the ``Task`` of an upstream's ``notifications/tasks/status``."""


class TaskRequests:
    """Task requests to the upstream (a part of ``McpConnector``)."""

    _name: str
    _namespace: str
    _task_listeners: list[TaskListener]
    request: Callable[..., Awaitable[dict[str, Any]]]
    _inbound: Inbound

    @property
    def capabilities(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def augments(self, execution: object) -> bool:
        """Whether a call of a tool with this ``execution`` may be sent as a task."""
        return augments_calls(self.capabilities) and task_support(execution) in ("optional", "required")

    def takes_task_extension(self) -> bool:
        """Whether the upstream declares the 2026-07-28 tasks extension (it decides per call)."""
        return declares_tasks(self.capabilities)

    def on_task_status(self, listener: TaskListener) -> None:
        """Have ``listener`` told of the upstream's task status notifications (awaited by the upstream's
        reader: it must not block)."""
        self._task_listeners.append(listener)

    async def _task_status(self, params: Mapping[str, Any]) -> None:
        for listener in self._task_listeners:
            await listener(self._name, params)

    def lists_tasks(self) -> bool:
        tasks = self.capabilities.get("tasks")
        return isinstance(tasks, Mapping) and isinstance(tasks.get("list"), Mapping)

    async def task_request(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        auth: httpx2.Auth | None,
        deadline: float | None = None,
        modern: bool = False,
    ) -> dict[str, Any]:
        """``method`` (a ``tasks/…`` request; ``modern``: of the 2026-07-28 extension) as the upstream
        answers it, with the upstream's own task ids; a ``tasks/result`` of a tool call (and a completed
        task's result inlined in the extension's ``tasks/get``) has its URIs namespaced as the call's
        would be, and the secrets of the connector's connections masked (as in what the upstream asks
        of agents). While a
        ``tasks/result`` waits, the upstream's requests for that task (an ``input_required`` task's
        elicitation …) are put to the caller of :data:`CALL_EVENTS` (its ``ask``)."""
        if method == "tasks/result":  # what the upstream asks for the task meanwhile goes to the asker
            task = str(params.get("taskId"))
            with self._inbound.in_flight(f"tasks/result {task}", CALL_EVENTS.get(), deadline, task=task):
                result = own_answer(await self.request(method, params, auth=auth, deadline=deadline))
        elif modern:  # the extension's methods: the request declares it (the upstream requires that)
            declared: dict[str, Any] = {"extensions": {TASKS_EXTENSION: {}}}
            result = own_answer(
                await self.request(method, params, auth=auth, deadline=deadline, capabilities=declared)
            )
        else:
            result = own_answer(await self.request(method, params, auth=auth, deadline=deadline))
        if method == "tasks/result":
            if "content" in result:
                result["content"] = outward_content(self._namespace, result["content"])
            result = dict(self._inbound.masked(result))
        elif modern and isinstance(result.get("result"), Mapping):  # a completed task's result, inlined
            inlined = dict(result["result"])
            if "content" in inlined:
                inlined["content"] = outward_content(self._namespace, inlined["content"])
            result = dict(self._inbound.masked({**result, "result": inlined}))
        elif modern:  # what a task asks for (inputRequests) and why it failed: secrets masked
            result = dict(self._inbound.masked(result))
        return result
