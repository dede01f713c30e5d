"""``capabilities:`` settings → a :class:`Router` added to the hub (after every other connector)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jsonschema

from toolbridge.catalog import check_tool_name
from toolbridge.errors import ConfigurationError
from toolbridge.router._mapping import Argument, ArgumentMapping, ResultMapping
from toolbridge.router._model import Capability, Provider
from toolbridge.router._router import ROUTER_POLICY, Router
from toolbridge.router._settings import CapabilitySettings, ProviderSettings

if TYPE_CHECKING:
    from toolbridge.hub import Hub
    from toolbridge.router._router import Locate as _Locate
    from toolbridge.settings import Settings

__all__ = ["build_router"]


def build_router(settings: Settings, hub: Hub) -> Router | None:
    """The router of ``settings.capabilities`` (None when there are none), checked against the tools
    known before start; :meth:`Router.__aenter__` checks again once every connector has listed its tools."""
    if not settings.capabilities:
        return None
    from toolbridge.settings import located_error

    def locate(loc: tuple[str | int, ...], message: str, hint: str | None) -> ConfigurationError:
        return located_error(settings, loc, message, hint)

    capabilities = [_capability(name, c, locate) for name, c in settings.capabilities.items()]
    router = Router(hub, capabilities, locate=locate)
    router.check(complete=False)
    hub.add_connector(router, policy=ROUTER_POLICY)
    return router


def _capability(name: str, config: CapabilitySettings, locate: _Locate) -> Capability:
    loc = ("capabilities", name)
    try:
        check_tool_name(f"capability.{name}")
    except ConfigurationError as exc:
        raise locate(loc, f"{name!r} cannot name a tool: {exc.message}", exc.hint) from None
    _check_schema(config.input, (*loc, "input"), locate)
    if config.output is not None:
        _check_schema(config.output, (*loc, "output"), locate)
    providers = [_provider(p, (*loc, "providers", i), locate) for i, p in enumerate(config.providers)]
    try:
        return Capability(
            name=name,
            description=config.description,
            input_schema=config.input,
            providers=tuple(providers),
            choice=config.choice,
            title=config.title,
            output_schema=config.output,
            loc=loc,
        )
    except ConfigurationError as exc:
        raise locate(loc, exc.message, exc.hint) from None


def _provider(config: ProviderSettings, loc: tuple[str | int, ...], locate: _Locate) -> Provider:
    mapping = None
    if config.arguments is not None:
        for argument, value in config.arguments.items():
            try:
                Argument(argument, value)
            except ConfigurationError as exc:
                raise locate((*loc, "arguments", argument), exc.message, exc.hint) from None
        mapping = ArgumentMapping(config.arguments)
    result = None
    if config.result is not None:
        try:
            result = ResultMapping(config.result)
        except ConfigurationError as exc:
            raise locate((*loc, "result"), exc.message, exc.hint) from None
    return Provider(config.tool, mapping, config.weight, result)


def _check_schema(schema: dict[str, object], loc: tuple[str | int, ...], locate: _Locate) -> None:
    if schema.get("type") != "object":
        what = loc[-1]  # input or output (MCP requires an object for both)
        raise locate(
            loc, f"the {what} schema must have type 'object'", f"write {what}: {{type: object, ...}}"
        )
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise locate(loc, f"not a valid JSON Schema: {exc.message}", None) from None
