"""The catalog: every tool by name, each with its argument validator compiled once, on first use."""

from __future__ import annotations

import atexit
import json
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from toolbridge._suggest import close_matches
from toolbridge.catalog._fixes import how_to_fix
from toolbridge.catalog._quick import DRAFT_7, DRAFT_2020_12, Check, compile_check
from toolbridge.catalog._search import Mode, SearchIndex, SearchResult
from toolbridge.catalog._semantic import EmbeddingCache, load_embedder, process_cache, tool_text
from toolbridge.catalog._tool import Tool
from toolbridge.errors import (
    ConfigurationError,
    InvalidArguments,
    PayloadTooLarge,
    ToolNotFound,
)

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError

__all__ = ["Catalog"]

_QUICK_DRAFTS = {"Draft202012Validator": DRAFT_2020_12, "Draft7Validator": DRAFT_7}
"""The drafts whose schemas get a compiled check, by the name of jsonschema's validator for them (only
imported on the first call)."""


class Catalog:
    """Tools by name. Adding a duplicate name is a configuration error, never a silent overwrite."""

    def __init__(
        self,
        *,
        semantic: bool = True,
        embedding_cache: EmbeddingCache | None = None,
        descriptions: Mapping[str, str] | None = None,
        embed_in_background: bool = True,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, tuple[Check | None, jsonschema.protocols.Validator]] = {}
        self._version = 0
        self._indexed: tuple[int, SearchIndex] | None = None
        self.semantic = semantic
        """Fuse BM25F with embeddings when ``toolbridge[semantic]`` is installed (False: BM25F alone)."""
        self.embedding_cache = embedding_cache
        """Where tool embeddings are kept (None: in memory, shared by the process's catalogs)."""
        self.descriptions: dict[str, str] = dict(descriptions or {})
        """Connector → the operator's one line on it (``description:`` in toolbridge.yaml), for searches."""
        self.embed_in_background = embed_in_background
        """Tools whose embeddings are not cached are embedded in a thread; searches are BM25F alone until
        they are done (False: the index build waits for them)."""
        self._embedding: threading.Thread | None = None
        self._stopping = False
        self.search_mode: Mode = "fused"
        """``fused`` (BM25F and embeddings), ``bm25`` or ``semantic`` alone (for comparisons)."""
        self.spelling = True
        """Read misspelt query words as the catalog's (:mod:`~toolbridge.catalog._spelling`; False: as
        written, for comparisons)."""

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ConfigurationError(
                f"two tools are named {tool.name!r}",
                hint="rename one of them or give their connectors different names",
            )
        self._tools[tool.name] = tool
        self._version += 1

    def remove_connector(self, connector: str) -> None:
        for name in [n for n, t in self._tools.items() if t.connector == connector]:
            del self._tools[name]
            self._validators.pop(name, None)
            self._version += 1

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str, *, visible: Callable[[Tool], bool] | None = None) -> Tool:
        """The tool called ``name``; a missing (or invisible) one raises with "did you mean"."""
        tool = self._tools.get(name)
        if tool is not None and (visible is None or visible(tool)):
            return tool
        names = [t.name for t in self._tools.values() if visible is None or visible(t)]
        raise ToolNotFound(name, suggestions=_close_names(name, names))

    def search(
        self, query: str, *, limit: int = 10, keep: Callable[[Tool], bool] | None = None
    ) -> SearchResult:
        """The tools that best match ``query`` (:class:`SearchIndex`, rebuilt on first use after a change)."""
        index = self._index()
        return index.search(query, limit=limit, keep=keep, mode=self.search_mode, spelling=self.spelling)

    def connector_words(self, keep: Callable[[Tool], bool] | None = None) -> dict[str, list[str]]:
        """Connector → the words its tool names use most: what each connector covers, for a rephrase."""
        return self._index().connectors(keep)

    @property
    def index_ready(self) -> bool:
        """Whether the search index matches the catalog (else the next search builds it)."""
        return self._indexed is not None and self._indexed[0] == self._version

    async def prepare_search(self) -> None:
        """Build the search index in a worker thread if the catalog changed since it was built, so that
        a search does not hold the event loop for it (about 0.3 s per 1,000 tools; embeddings not cached
        yet are made in the background, see :attr:`embed_in_background`)."""
        if self.index_ready:
            return
        version, tools = self._version, list(self)
        index = await anyio.to_thread.run_sync(self._build, tools)
        self._indexed = (version, index)  # a catalog changed meanwhile has a newer version: rebuilt on use

    def _index(self) -> SearchIndex:
        if self._indexed is None or self._indexed[0] != self._version:
            self._indexed = (self._version, self._build(list(self)))
        return self._indexed[1]

    def _build(self, tools: list[Tool]) -> SearchIndex:
        if not self.semantic:
            return SearchIndex(tools)
        cache = self.embedding_cache if self.embedding_cache is not None else process_cache()
        texts = [tool_text(t) for t in tools]
        loaded = load_embedder.cache_info().currsize > 0  # else loading it takes a second or more
        if not self.embed_in_background or (loaded and not _missing(cache, texts)):
            return SearchIndex(tools, embedder=load_embedder(), cache=cache)
        index = SearchIndex(tools)  # BM25F now; fused once the embeddings are there
        version = self._version

        def embed() -> None:
            embedder = load_embedder()
            stop = lambda: self._stopping or self._version != version  # noqa: E731
            if embedder is not None and cache.fill(embedder, texts, stop=stop):
                index.attach(embedder, cache.vectors(embedder, texts))

        self._embedding = threading.Thread(target=embed, name="toolbridge-embeddings", daemon=True)
        _EMBEDDING.add(self)
        self._embedding.start()
        return index

    @property
    def embedding_pending(self) -> bool:
        """Whether tools are being embedded in the background (searches are BM25F alone meanwhile)."""
        return self._embedding is not None and self._embedding.is_alive()

    def embeddings_missing(self) -> int:
        """How many tools have no embedding cached yet (0 when searches are BM25F alone); loads the
        model if it is not loaded."""
        embedder = load_embedder() if self.semantic else None
        if embedder is None:
            return 0
        cache = self.embedding_cache if self.embedding_cache is not None else process_cache()
        return len(cache.missing(embedder, [tool_text(t) for t in self]))

    def stop_embedding(self) -> None:
        """Stop a background embedding after the texts it is running (what it made stays cached) and
        wait for it: a process that exits while the thread is inside the runtime can abort. The next
        search starts it again."""
        embedding = self._embedding
        if embedding is None or not embedding.is_alive():
            return
        self._stopping = True
        try:
            embedding.join()
        finally:
            self._stopping = False
        if self._indexed is not None and not self._indexed[1].semantic:
            self._indexed = None  # unfinished: rebuilt (and the rest embedded) on the next search

    def wait_for_embeddings(self, timeout: float | None = None) -> bool:
        """Build the index if needed and wait for its embeddings (True when none is still being made)."""
        self._index()
        embedding = self._embedding
        if embedding is not None:
            embedding.join(timeout)
        return embedding is None or not embedding.is_alive()

    def validate(self, tool: Tool, arguments: Mapping[str, Any], *, size: int, max_bytes: int) -> None:
        """Check ``arguments`` (``size`` bytes serialized) against the cap and the tool's input schema;
        raise one error naming every bad field."""
        if size > max_bytes:
            raise PayloadTooLarge(f"the arguments of {tool.name!r}", size=size, limit=max_bytes)
        compiled = self._validators.get(tool.name)
        if compiled is None:
            compiled = self._compile(tool)
        quick, validator = compiled
        if quick is not None and quick(arguments):
            return  # certainly valid (see _quick): the common case skips the schema walk
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if errors:
            raise _invalid(tool, errors)

    def _compile(self, tool: Tool) -> tuple[Check | None, jsonschema.protocols.Validator]:
        import jsonschema  # on the first call: listing tools needs no validator (and no jsonschema)

        schema = dict(tool.input_schema)
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        checker = cls.FORMAT_CHECKER
        validator: jsonschema.protocols.Validator = cls(schema, format_checker=checker)
        quick = None
        draft = _QUICK_DRAFTS.get(cls.__name__)
        if draft is not None:
            quick = compile_check(schema, dict.fromkeys(checker.checkers, checker.conforms), draft)
        compiled = self._validators[tool.name] = (quick, validator)
        return compiled


def _missing(cache: EmbeddingCache, texts: list[str]) -> bool:
    embedder = load_embedder()
    return embedder is not None and bool(cache.missing(embedder, texts))


def _invalid(tool: Tool, errors: list[ValidationError]) -> InvalidArguments:
    details = [_describe(tool, e) for e in errors[:20]]
    summary = "; ".join(f"{d['field']}: {d['error']}" for d in details)
    return InvalidArguments(
        f"arguments for {tool.name!r} are invalid: {summary}",
        errors=details,
        tool=tool.name,
        hint="fix the named fields and call again; the tool's input schema lists every field it accepts",
    )


def _describe(tool: Tool, error: ValidationError) -> dict[str, str]:
    path = ".".join(str(p) for p in error.absolute_path) or "(arguments)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = set(schema.get("properties", {}))
        unknown = sorted(set(error.instance) - allowed)
        parts = []
        for name in unknown:
            match = close_matches(name, allowed, n=1)
            parts.append(f"unknown field {name!r}" + (f" (did you mean {match[0]!r}?)" if match else ""))
        return {"field": path, "error": "; ".join(parts) + f"; allowed fields: {', '.join(sorted(allowed))}"}
    if error.validator == "required":
        return {"field": path, "error": error.message}
    message = error.message
    shown = repr(error.instance)
    if (error.instance is None or isinstance(error.instance, bool)) and message.startswith(shown):
        message = json.dumps(error.instance) + message[len(shown) :]  # JSON's null, true: what was sent
    if len(shown) > 80 and message.startswith(shown):  # "'<a 5 KB value>' is too long": keep the reason
        message = f"{shown[:60]}…{message[len(shown) :]}"
    if len(message) > 300:
        message = message[:300] + "…"
    fix = how_to_fix(error)
    return {"field": path, "error": f"{message}; {fix}" if fix else message}


_EMBEDDING: weakref.WeakSet[Catalog] = weakref.WeakSet()
"""Catalogs that started a background embedding: stopped before the interpreter exits."""


@atexit.register
def _stop_all() -> None:
    for catalog in list(_EMBEDDING):
        catalog.stop_embedding()


def _close_names(name: str, names: list[str]) -> list[str]:
    """Tool names spelt close to ``name``, or to its last part after ``__`` when a client put its own
    namespace in front (``mcp__toolbridge__util_calculate``: nothing was close to the whole)."""
    found = close_matches(name, names, cutoff=0.75)
    bare = name.rpartition("__")[2]
    if not found and bare and bare != name:
        found = close_matches(bare, names, cutoff=0.75)
    return found
