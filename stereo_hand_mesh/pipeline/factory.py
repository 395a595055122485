"""One function that turns a model choice into a ready pipeline, for the node, the CLI and the
benchmarks alike.

The model file decides the path: no file (the shipped networks), a ``.npz`` weights file or
an ``.onnx`` file carrying the keypoint metadata of ``tools/import_mediapipe_hands.py`` run the
real-trained keypoint pipeline (:class:`~stereo_hand_mesh.pipeline.estimator.HandMeshPipeline`,
with the per-user hand calibration the landmark file may carry:
:mod:`~stereo_hand_mesh.pipeline.calibration`);
a ``.pt`` checkpoint or an ``.onnx`` export of the synthetic-trained mesh network (what
``stereo-hand-mesh pretrain``/``adapt`` and the adaptation node write) runs the legacy mesh-uv
pipeline (:class:`~stereo_hand_mesh.pipeline.mesh_uv.MeshUVPipeline`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from stereo_hand_mesh.errors import ModelFileError
from stereo_hand_mesh.pipeline.calibration import (
    HandCalibration,
    calibrated_fit_settings,
    read_model_calibration,
)
from stereo_hand_mesh.pipeline.estimator import HandMeshPipeline, PipelineSettings
from stereo_hand_mesh.pipeline.mesh_uv import MeshUVPipeline, joint_regressor_for

__all__ = ["KEYPOINT_METADATA_KEY", "PipelineChoice", "create_pipeline", "model_kind"]

#: ONNX ``metadata_props`` key of the imported keypoint networks.
KEYPOINT_METADATA_KEY = "stereo_hand_mesh_keypoints"


@dataclass(frozen=True)
class PipelineChoice:
    """A ready pipeline and what it runs.

    Attributes:
        pipeline: the pipeline.
        kind: ``"keypoints"`` or ``"mesh_uv"``.
        reason: the runtime and why it was chosen (one line for the log).
        model: the model file(s), for the log and the diagnostics.
        calibration: the hand calibration the pipeline's fit holds (read from the landmark
            file), or None.
    """

    pipeline: HandMeshPipeline | MeshUVPipeline
    kind: str
    reason: str
    model: str
    calibration: HandCalibration | None = None


def model_kind(path: str | os.PathLike[str] | None) -> str:
    """``"keypoints"`` or ``"mesh_uv"``: which pipeline a model file runs in.

    Raises:
        ModelFileError: the file is missing, or an ONNX file of neither kind.
    """
    if not path:
        return "keypoints"
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model_file_path expected a file; {path} does not exist")
    if path.suffix == ".npz":
        return "keypoints"
    if path.suffix == ".pt":
        return "mesh_uv"
    # The metadata key's bytes, looked for in the file instead of parsing it with the onnx
    # package: importing onnx takes the GIL for most of a second, which would stall a node
    # serving pairs while ~/reload_model checks a file. The runtime that loads the file next
    # validates it for real.
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"model file {path} could not be read: {err}") from None
    from stereo_hand_mesh.runtime.base import METADATA_KEY

    if KEYPOINT_METADATA_KEY.encode() in data:
        return "keypoints"
    if METADATA_KEY.encode() in data:
        return "mesh_uv"
    raise ModelFileError(
        f"ONNX model {path} expected '{KEYPOINT_METADATA_KEY}' metadata (an imported hand "
        f"network) or '{METADATA_KEY}' (a stereo-hand-mesh export); got neither (corrupt, or "
        "not one of ours?)"
    )


def create_pipeline(
    settings: PipelineSettings,
    backend: str = "auto",
    model_file_path: str | os.PathLike[str] | None = None,
    palm_file_path: str | os.PathLike[str] | None = None,
    keypoint_variant: str = "auto",
    engine_file_path: str | os.PathLike[str] | None = None,
    engine_dir: str | os.PathLike[str] | None = None,
    enable_fp16: bool = False,
    force_engine_update: bool = False,
    intra_op_threads: int = 0,
    apply_calibration: bool = True,
) -> PipelineChoice:
    """The pipeline for a model choice (module docstring).

    Args:
        settings: the pipeline's settings.
        backend: ``auto``, ``tensorrt``, ``onnxruntime`` or ``torch``.
        model_file_path: the landmark network or a legacy mesh model; None for the shipped
            keypoint networks.
        palm_file_path: the palm detector (keypoint path; None: the shipped one).
        keypoint_variant: ``auto``, ``lite`` or ``full`` (shipped keypoint networks).
        engine_file_path: the legacy model's TensorRT engine file.
        engine_dir: where the keypoint networks' TensorRT engines are cached.
        enable_fp16: FP16 for TensorRT and torch on CUDA.
        force_engine_update: rebuild TensorRT engines.
        intra_op_threads: ONNX Runtime CPU threads (0: default).
        apply_calibration: when the landmark file carries a hand calibration
            (:func:`~stereo_hand_mesh.pipeline.calibration.read_model_calibration`), fit
            every pair with its shape held (``settings.fit.fixed_shape``); False ignores it.

    Raises:
        ConfigError: a bad backend, variant or file kind for the backend.
        ModelFileError: missing or corrupt model files, or a runtime that is not installed.
    """
    kind = model_kind(model_file_path)
    if kind == "mesh_uv":
        from stereo_hand_mesh.runtime.select import create_backend

        choice = create_backend(
            backend,
            model_file_path,
            engine_file_path,
            enable_fp16=enable_fp16,
            force_engine_update=force_engine_update,
            intra_op_threads=intra_op_threads,
        )
        pipeline = MeshUVPipeline(
            choice.backend, joint_regressor_for(choice.backend.info), settings
        )
        return PipelineChoice(pipeline, kind, choice.reason, str(model_file_path))
    from stereo_hand_mesh.runtime.keypoint_nets import create_hand_nets

    nets = create_hand_nets(
        backend,
        keypoint_variant,
        model_file_path,
        palm_file_path,
        engine_dir,
        enable_fp16,
        force_engine_update,
        intra_op_threads,
    )
    model = f"{nets.landmarks.path} + {nets.detector.path}"
    calibration = (
        read_model_calibration(nets.landmarks.path, getattr(nets.landmarks, "metadata", None))
        if apply_calibration
        else None
    )
    if calibration is not None:
        settings = replace(settings, fit=calibrated_fit_settings(settings.fit, calibration))
    return PipelineChoice(HandMeshPipeline(nets, settings), kind, nets.reason, model, calibration)
