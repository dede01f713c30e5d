"""The Python connector: functions in this process, sync or async, become tools."""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import pydantic
import pydantic_core

from toolbridge._suggest import close_matches, did_you_mean
from toolbridge.catalog import Tool, ToolAnnotations
from toolbridge.catalog._schema import FunctionSignature, inspect_function
from toolbridge.connectors._base import Invocation
from toolbridge.errors import ConfigurationError, InvalidArguments, ToolbridgeError, ToolExecutionError

__all__ = ["PythonConnector", "import_callable"]


@dataclass(frozen=True, slots=True)
class _Entry:
    fn: Callable[..., Any]
    signature: FunctionSignature
    is_async: bool
    blocking: bool
    context_param: str | None


class PythonConnector:
    """A connector whose tools are Python callables registered with :meth:`add`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._entries: dict[str, _Entry] = {}
        self._tools: dict[str, Tool] = {}

    @property
    def name(self) -> str:
        return self._name

    def add(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        title: str | None = None,
        blocking: bool = True,
        cost: int = 1,
    ) -> Tool:
        """Register ``fn`` as ``<connector>.<name>``.

        Sync functions run in a worker thread unless ``blocking=False`` says they never block.
        """
        operation = name or str(getattr(fn, "__name__", ""))
        context_param = _invocation_param(fn)
        signature = inspect_function(fn, skip=frozenset({context_param} if context_param else ()))
        tool = Tool(
            name=f"{self._name}.{operation}",
            connector=self._name,
            description=description or signature.description or operation.replace("_", " "),
            input_schema=signature.input_schema,
            output_schema=signature.output_schema,
            annotations=annotations or ToolAnnotations(),
            title=title,
            cost=cost,
        )
        if tool.name in self._tools:
            raise ConfigurationError(
                f"tool {tool.name!r} is registered twice", hint="give one a different name"
            )
        is_async = inspect.iscoroutinefunction(fn)
        self._entries[tool.name] = _Entry(fn, signature, is_async, blocking, context_param)
        self._tools[tool.name] = tool
        return tool

    def tools(self) -> Sequence[Tool]:
        return list(self._tools.values())

    def idempotency_key_carrier(self, tool: Tool) -> str | None:
        """A function that takes an ``Invocation`` receives the call's key and is trusted to pass it on
        (``invocation.idempotency_key``); one that does not cannot, so its keyed writes are not retried."""
        entry = self._entries.get(tool.name)
        if entry is None or entry.context_param is None:
            return None
        return f"the function's {entry.context_param!r} parameter (invocation.idempotency_key)"

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        entry = self._entries[tool.name]
        kwargs = _convert(entry, tool, arguments)
        if entry.context_param:
            kwargs[entry.context_param] = invocation
        try:
            if entry.is_async:
                result = await entry.fn(**kwargs)
            elif entry.blocking:  # left to finish alone at the call's deadline (a thread cannot be stopped);
                # its slot in the thread pool is given back then, so hung functions do not starve the rest
                call = functools.partial(_in_thread, entry.fn, kwargs)
                result = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
            else:
                result = entry.fn(**kwargs)
        except ToolbridgeError:
            raise
        except ValueError as exc:
            if not _rejects(entry, exc):
                raise _failed(tool, exc) from exc
            raise InvalidArguments(
                f"{tool.name!r} refused its arguments: {exc}",
                errors=[{"field": "(root)", "error": str(exc)}],
                tool=tool.name,
                hint="change the arguments as the message says and call again",
            ) from exc
        except (Exception, SystemExit) as exc:  # the tool's code may raise anything (sys.exit included)
            raise _failed(tool, exc) from exc
        try:
            return _jsonable(entry, result)
        except Exception as exc:  # bytes that are no text, an object pydantic cannot serialize
            raise ToolExecutionError(
                f"the tool returned what cannot be sent as JSON ({type(exc).__name__}: {str(exc)[:200]})",
                tool=tool.name,
                hint="the tool's owner must return JSON-compatible values (str for text, base64 for bytes)",
            ) from exc

    async def __aenter__(self) -> PythonConnector:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _failed(tool: Tool, exc: BaseException) -> ToolExecutionError:
    return ToolExecutionError(
        f"{type(exc).__name__}: {exc}",
        tool=tool.name,
        hint="the tool itself failed; check the arguments or report it to the tool's owner",
    )


def _rejects(entry: _Entry, exc: ValueError) -> bool:
    """Whether the function refused its arguments: a ``ValueError`` itself (not a subclass such as
    ``JSONDecodeError`` or ``UnicodeDecodeError``) raised in the function's own body (by a ``raise`` or a
    conversion such as ``int(text)``), not in code it calls. Anything else stays a failure of the tool."""
    if type(exc) is not ValueError or exc.__traceback__ is None:
        return False
    frame = exc.__traceback__
    while frame.tb_next is not None:
        frame = frame.tb_next
    return frame.tb_frame.f_code is getattr(inspect.unwrap(entry.fn), "__code__", None)


def _in_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``fn(**kwargs)`` in a worker thread, where a KeyboardInterrupt can only be the function's own."""
    try:
        return fn(**kwargs)
    except KeyboardInterrupt as exc:
        raise RuntimeError(f"the function raised KeyboardInterrupt: {exc}") from exc


def _invocation_param(fn: Callable[..., Any]) -> str | None:
    """The parameter annotated ``Invocation``, which receives the call's context instead of an argument."""
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        return None  # inspect_function reports unreadable hints
    return next((name for name, hint in hints.items() if hint is Invocation and name != "return"), None)


def _convert(entry: _Entry, tool: Tool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    try:
        model = entry.signature.model.model_validate(dict(arguments))
    except pydantic.ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(root)", "error": e["msg"]} for e in exc.errors()
        ]
        raise InvalidArguments(
            f"arguments for {tool.name!r} are invalid: "
            + "; ".join(f"{e['field']}: {e['error']}" for e in errors),
            errors=errors,
            tool=tool.name,
            hint="fix the named fields and call again",
        ) from None
    return {name: getattr(model, name) for name in type(model).model_fields}


def _jsonable(entry: _Entry, result: Any) -> Any:
    adapter = entry.signature.result
    if adapter is None:
        return pydantic_core.to_jsonable_python(result)  # no annotation: no adapter to build per call
    try:  # what it returns must be what it declares: the declared schema is advertised as outputSchema
        checked = adapter.validate_python(result)
    except pydantic.ValidationError as exc:
        declared = f"it returned {type(result).__name__}, not what its annotation declares"
        raise ValueError(f"{declared}: {exc}") from None
    return adapter.dump_python(checked, mode="json")


def import_callable(ref: str, *, folder: str | None = None) -> Callable[..., Any]:
    """Import ``package.module:function`` (the form used in toolbridge.yaml); ``folder``: where the
    configuration puts its modules, named when one is not found."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(
            f"{ref!r} is not a 'module:function' reference", hint="write it as 'package.module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import module {module_name!r}: {exc}",
            hint="check the spelling and that the module is "
            + (f"in {folder} (the config file's folder, or its module_path) or " if folder else "")
            + "on the Python path",
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            where = getattr(module, "__file__", None)
            functions = sorted(
                n
                for n, v in vars(target).items()
                if inspect.isroutine(v) and not n.startswith("_") and _defined_in(v, module)
            )
            listing = (
                f"its functions: {', '.join(functions[:12])}" if functions else "it defines no functions"
            )
            raise ConfigurationError(
                f"module {module_name!r}{f' ({where})' if where else ''} has no attribute {attr!r}",
                hint="; ".join(h for h in (did_you_mean(close_matches(part, functions)), listing) if h),
            )
        target = getattr(target, part)
    if not callable(target):
        raise ConfigurationError(f"{ref!r} is not callable", hint="point at a function")
    return target  # type: ignore[no-any-return]


def _defined_in(value: Any, module: Any) -> bool:
    """Whether ``value`` was defined in ``module`` (not imported into it, as ``Literal`` or ``datetime``)."""
    return bool(getattr(value, "__module__", None) == module.__name__)
