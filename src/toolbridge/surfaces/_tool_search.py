"""One search answer for every surface: the MCP meta-tool ``toolbridge.search_tools``, REST's
``GET /v1/tools?q=`` and the CLI, all from the hub's index (:meth:`toolbridge.Hub.search_tools`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from toolbridge._suggest import close_matches
from toolbridge.catalog import Tool, summary_of
from toolbridge.errors import InvalidArguments, NotFound, did_you_mean

if TYPE_CHECKING:
    from toolbridge import Hub, Principal

__all__ = ["MAX_QUERY_CHARS", "search_document", "tool_filter"]

MAX_QUERY_CHARS = 1000
"""The longest query searched: a task in a sentence or two (a pasted document is no query)."""
_LINE = 200
"""Characters of a connector's one-line description made from its tools' summaries."""


def search_document(
    hub: Hub,
    principal: Principal,
    query: str,
    *,
    limit: int = 10,
    connector: str | None = None,
    read_only: bool | None = None,
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """``{"tools": [{name, summary, score, read_only}, ...]}`` best first; when nothing matches well,
    also ``good_match: false``, a ``hint`` on how to rephrase and the ``connectors`` the caller can use,
    each with its one-line description and the words its tool names use most. A search within one
    ``connector`` that matches nothing well lists that connector's other tools after its hits (score 0),
    up to ``limit``, so that following the hint to pick a connector shows what it has. Words of the
    query read as others (a misspelt "mesage" as "message") are in ``read_as``."""
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidArguments(
            f"the query is {len(query):,} characters long; at most {MAX_QUERY_CHARS:,} are searched",
            errors=[{"field": "query", "error": f"longer than {MAX_QUERY_CHARS} characters"}],
            hint="describe the task in a sentence, e.g. 'post a message to a channel'",
        )
    if connector is not None:
        _check_connector(hub, principal, connector)
    _check_tags(hub, principal, tags)
    where = tool_filter(connector, read_only, tags)
    found = hub.search_tools(principal, query, limit=limit, where=where)
    answer: dict[str, Any] = {"tools": [_entry(hit.tool, hit.score) for hit in found.hits]}
    if found.read_as:  # misspelt words, and what they were read as
        answer["read_as"] = dict(found.read_as)
    if found.good:
        return answer
    keep = hub.visible_to(principal, where)
    answer["good_match"] = False
    if connector is None:
        answer["hint"] = _rephrase(query, found.terms, bool(found.hits))
    else:  # the hint sent the agent here: its tools, not the same hint again
        shown = {hit.tool.name for hit in found.hits}
        others = [t for t in hub.catalog if t.name not in shown and keep(t)]
        answer["tools"] += [_entry(tool, 0.0) for tool in others[: max(0, limit - len(shown))]]
        answer["hint"] = _within(connector, query, len(shown), len(answer["tools"]), len(shown) + len(others))
    words = hub.catalog.connector_words(keep)
    answer["connectors"] = [
        {"name": name, "description": description, "covers": ", ".join(words[name])}
        for name, description in _descriptions(hub, keep, words).items()
    ]
    return answer


def _entry(tool: Tool, score: float) -> dict[str, Any]:
    return {
        "name": tool.name,
        "summary": summary_of(tool),
        "score": score,
        "read_only": tool.annotations.read_only,
    }


def _check_connector(hub: Hub, principal: Principal, connector: str) -> None:
    """A connector none of whose tools ``principal`` may use is answered as unknown (as a tool outside its
    scopes is), with the connectors it may use."""
    usable = sorted(hub.catalog.connector_words(hub.visible_to(principal)))
    if connector in usable:
        return
    listing = f"connectors you can use: {', '.join(usable)}" if usable else "you can use no connector"
    raise NotFound(
        f"no connector {connector!r} among the tools you can use",
        hint="; ".join(h for h in (did_you_mean(close_matches(connector, usable)), listing) if h),
    )


def _descriptions(hub: Hub, keep: Callable[[Tool], bool], names: Iterable[str]) -> dict[str, str]:
    """Each connector's one line on what it is for (:func:`_description`); for one that has none, what
    its tools the caller may use do (``add: Save a note.; list: …``)."""
    lines = {name: _description(hub, name) for name in names}
    bare = {name for name, line in lines.items() if not line}
    if bare:
        tools: dict[str, list[Tool]] = {}
        for tool in hub.catalog:
            if tool.connector in bare and keep(tool):
                tools.setdefault(tool.connector, []).append(tool)
        for name, own in tools.items():
            line = "; ".join(f"{t.operation}: {summary_of(t)}".rstrip(":. ") for t in own)
            lines[name] = line if len(line) <= _LINE else line[: _LINE - 1].rstrip() + "…"
    return lines


def _description(hub: Hub, name: str) -> str:
    """The connector's one line on what it is for: the operator's ``description:``, else the OpenAPI
    document's ``info`` or the MCP server's description."""
    if name in hub.catalog.descriptions:
        return hub.catalog.descriptions[name]
    try:
        text = getattr(hub.connector(name), "description", "")
    except KeyError:  # a tool added to the catalog without a connector (tests, meta-tools)
        return ""
    return text if isinstance(text, str) else ""


def _check_tags(hub: Hub, principal: Principal, tags: Sequence[str]) -> None:
    """A tag no tool the caller may use has is refused with the closest ones (a typo would otherwise
    answer nothing, silently)."""
    if not tags:
        return
    keep = hub.visible_to(principal)
    known = {tag.lower(): tag for tool in hub.catalog if tool.tags and keep(tool) for tag in tool.tags}
    for tag in tags:
        if tag.lower() not in known:
            close = [known[t] for t in close_matches(tag.lower(), known)]
            names = sorted(known.values())
            more = f" and {len(names) - 30} more" if len(names) > 30 else ""
            listing = f"tags of the tools you can use: {', '.join(names[:30])}{more}"
            listing = listing if known else "no tool you can use has tags"
            hint = "; ".join(h for h in (did_you_mean(close), listing) if h)
            raise NotFound(f"no tool you can use is tagged {tag!r}", hint=hint)


def tool_filter(
    connector: str | None, read_only: bool | None, tags: Sequence[str] = ()
) -> Callable[[Tool], bool] | None:
    """Whether a tool is of ``connector``, read-only or not, and has one of ``tags`` (any case), for
    those given; None when none is (a search and the REST listing filter alike)."""
    wanted = frozenset(t.lower() for t in tags)
    if connector is None and read_only is None and not wanted:
        return None
    return lambda t: (
        (connector is None or t.connector == connector)
        and (read_only is None or t.annotations.read_only == read_only)
        and (not wanted or any(tag.lower() in wanted for tag in t.tags))
    )


def _rephrase(query: str, terms: tuple[str, ...], any_hits: bool) -> str:
    if not terms:
        return (
            "the query has no words to search for: describe the task, e.g. 'send a message to a channel' "
            "or 'list open incidents'; the connectors below say what each service covers"
        )
    closest = "the tools listed are the closest, but none matches well; " if any_hits else ""
    return (
        f"no tool matches {_quoted(query)} well: {closest}rephrase with the action and the thing it acts on "
        "(e.g. 'create incident', 'list channels'), or pick a connector below and pass it as 'connector'"
    )


def _within(connector: str, query: str, hits: int, shown: int, total: int) -> str:
    """The hint of a search within ``connector`` that matched nothing well: its tools are listed."""
    more = f" ({shown} of {total}: raise 'limit' for more)" if total > shown else ""
    order = ", those that match best first" if hits else ""
    return (
        f"no tool of {connector!r} matches {_quoted(query)} well; its tools are listed{more}{order}: pick "
        "one by its summary, or rephrase with the action and the thing it acts on (e.g. 'create "
        "incident', 'list channels'), or search without 'connector'"
    )


def _quoted(query: str, limit: int = 80) -> str:
    """``query`` in quotes, cut to ``limit`` characters (the hint repeats it, not the whole of it)."""
    return repr(query if len(query) <= limit else query[: limit - 1] + "…")
