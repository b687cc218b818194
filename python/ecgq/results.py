"""Results as dataclasses with numpy arrays (docs/protocol.md section 4.2)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

_DTYPES = {"f32": "<f4", "f64": "<f8", "i16": "<i2"}


def typed_array(value) -> Optional[np.ndarray]:
    """A wire typed array {dtype, shape, data} as a numpy array (None when absent)."""
    if not isinstance(value, dict):
        return None
    dtype = _DTYPES.get(value.get("dtype"))
    if dtype is None:
        return None
    return np.frombuffer(value.get("data", b""), dtype=dtype).reshape(value.get("shape", [0]))


def _vector(value, labels) -> Optional[np.ndarray]:
    """probs/logits: a {label: p} map (in label order) or a plain list."""
    if value is None:
        return None
    if isinstance(value, dict):
        order = labels or list(value)
        return np.array([value.get(k, np.nan) for k in order], dtype=np.float32)
    return np.asarray(value, dtype=np.float32)


@dataclass
class Result:
    """One job's answer. `probs` is in `labels` order; `label_probs` is the same as a dict.
    `saliency` is [segments, steps] over each 5 s segment (see docs/protocol.md for its time
    base); `timings` holds queued_ms, wake_ms, load_ms, preprocess_ms, infer_ms, total_ms."""

    id: str
    labels: List[str] = field(default_factory=list)
    probs: Optional[np.ndarray] = None
    logits: Optional[np.ndarray] = None
    embedding: Optional[np.ndarray] = None
    segment_probs: Optional[np.ndarray] = None
    segment_embeddings: Optional[np.ndarray] = None
    saliency: Optional[np.ndarray] = None
    n_segments: int = 0
    derived_leads: List[str] = field(default_factory=list)
    ignored_channels: List[str] = field(default_factory=list)
    masked_leads: List[str] = field(default_factory=list)
    model: Dict[str, str] = field(default_factory=dict)
    worker_id: str = ""
    attempts: int = 0
    cold_start: bool = False
    cached: bool = False
    timings: Dict[str, float] = field(default_factory=dict)
    meta: Any = None

    @property
    def label_probs(self) -> Dict[str, float]:
        """{label: probability}."""
        if self.probs is None:
            return {}
        return {label: float(p) for label, p in zip(self.labels, self.probs)}

    @classmethod
    def from_wire(cls, body: dict) -> "Result":
        labels = list(body.get("labels") or [])
        if not labels and isinstance(body.get("probs"), dict):
            labels = list(body["probs"])
        embedding = body.get("embedding")
        return cls(
            id=body.get("id", ""),
            labels=labels,
            probs=_vector(body.get("probs"), labels),
            logits=_vector(body.get("logits"), labels),
            embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
            segment_probs=typed_array(body.get("segment_probs")),
            segment_embeddings=typed_array(body.get("segment_embeddings")),
            saliency=typed_array(body.get("saliency")),
            n_segments=int(body.get("n_segments", 0)),
            derived_leads=list(body.get("derived_leads") or []),
            ignored_channels=list(body.get("ignored_channels") or []),
            masked_leads=list(body.get("masked_leads") or []),
            model=dict(body.get("model") or {}),
            worker_id=body.get("worker_id", ""),
            attempts=int(body.get("attempts", 0)),
            cold_start=bool(body.get("cold_start", False)),
            cached=bool(body.get("cached", False)),
            timings=dict(body.get("timings") or {}),
            meta=body.get("meta"),
        )
