"""What every inference backend offers, and the model metadata that travels with a model.

A backend runs the mesh network on one stereo pair's two crops as one batch of two and
returns per-vertex (u, v) in crop fractions (and root-relative depth when the model has the
monocular head). It never guesses the input size, normalization or topology: they come from
the checkpoint's metadata or, for ONNX files and engines, from the ONNX metadata written by
:func:`~stereo_hand_mesh.runtime.export.export_onnx`. Every backend takes crops preprocessed by
:func:`~stereo_hand_mesh.model.preprocess.normalize_crops` with :attr:`ModelInfo.normalization`
(the function training uses). This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from stereo_hand_mesh.errors import ModelFileError

__all__ = ["METADATA_KEY", "Backend", "ModelInfo"]

#: Key of the ONNX ``metadata_props`` entry holding :class:`ModelInfo` as JSON.
METADATA_KEY = "stereo_hand_mesh"


@dataclass(frozen=True)
class ModelInfo:
    """What a backend must know about its model.

    Attributes:
        input_size: crop side S, pixels.
        mean: (3,) RGB mean of the input normalization (crops scaled to [0, 1]).
        std: (3,) RGB standard deviation.
        topology_hash: hand mesh connectivity the model regresses.
        hand_model: ``"template"`` or ``"mano"``.
        num_vertices: V.
        has_depth_head: True when the model also outputs root-relative depth.
        variant: the variant the model was last trained as (``binocular`` or ``monocular``).
    """

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    topology_hash: str
    hand_model: str
    num_vertices: int
    has_depth_head: bool
    variant: str = "binocular"

    @property
    def normalization(self) -> dict[str, list[float]]:
        """The input normalization as a checkpoint stores it, for
        :func:`~stereo_hand_mesh.model.preprocess.normalize_crops`."""
        return {"mean": list(self.mean), "std": list(self.std)}

    def to_json(self) -> str:
        """JSON text (ONNX metadata)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> ModelInfo:
        """Parse :meth:`to_json` output.

        Raises:
            ModelFileError: the text is not a complete ModelInfo (the message names
                ``where``).
        """
        try:
            raw = json.loads(text)
            raw["mean"] = tuple(float(v) for v in raw["mean"])
            raw["std"] = tuple(float(v) for v in raw["std"])
            return cls(**raw)
        except (ValueError, TypeError, KeyError) as err:
            raise ModelFileError(
                f"{where} expected '{METADATA_KEY}' metadata describing the model; got "
                f"{text[:80]!r} ({type(err).__name__}: {err})"
            ) from None

    @classmethod
    def from_checkpoint_metadata(cls, meta: dict[str, Any]) -> ModelInfo:
        """From a checkpoint's metadata block."""
        config = meta["config"]
        norm = meta["normalization"]
        return cls(
            input_size=int(meta["input_size"]),
            mean=tuple(float(v) for v in norm["mean"]),
            std=tuple(float(v) for v in norm["std"]),
            topology_hash=str(meta["topology_hash"]),
            hand_model=str(meta.get("hand_model", "template")),
            num_vertices=int(config["num_vertices"]),
            has_depth_head=bool(config["monocular"]),
            variant=str(meta.get("variant", "binocular")),
        )


@runtime_checkable
class Backend(Protocol):
    """An inference backend (ONNX Runtime, TensorRT, torch).

    Attributes:
        name: e.g. ``"onnxruntime-cpu"``, ``"tensorrt-fp16"``, ``"torch-cuda"``.
        info: the model's metadata.
    """

    name: str
    info: ModelInfo

    def infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(2, 3, S, S) float32 normalized crops (left, right) -> (2, V, 2) uv in crop
        fractions, and (2, V) root-relative depth in metres or None."""
        ...
