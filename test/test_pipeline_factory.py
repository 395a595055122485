"""Tests of the model choice (stereo_hand_mesh.pipeline.factory): which pipeline a model
file runs in, the errors a bad file or a file of the wrong kind gives, and the runtimes and
variants of the keypoint networks on one rendered pair (the torch runtime against ONNX
Runtime's).

The shipped files of ``models/`` are used in place; broken ones are written in tmp dirs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
from stereo_hand_mesh.data.synth import RenderedPair, SynthSettings, iter_synthetic_pairs
from stereo_hand_mesh.errors import ConfigError, ModelFileError
from stereo_hand_mesh.geometry import StereoRig
from stereo_hand_mesh.geometry.crop import cut_crop
from stereo_hand_mesh.pipeline.estimator import HandMeshPipeline, PipelineSettings, StereoCrops
from stereo_hand_mesh.pipeline.factory import create_pipeline, model_kind

MODELS = Path(__file__).resolve().parents[1] / "models"
LANDMARK_ONNX = MODELS / "hand_landmark_lite.onnx"
PALM_ONNX = MODELS / "palm_detection_lite.onnx"
LANDMARK_NPZ = MODELS / "hand_landmark_lite.npz"
SETTINGS = PipelineSettings(smoothing=False)


def _named(path: Path) -> str:
    """A regex that matches a message naming ``path``."""
    return re.escape(str(path))


# --- which pipeline a file runs in -------------------------------------------------------


@pytest.mark.parametrize(
    "path, kind",
    [
        (None, "keypoints"),
        ("", "keypoints"),
        (MODELS / "hand_landmark_lite.npz", "keypoints"),
        (MODELS / "hand_landmark_full.onnx", "keypoints"),
        (LANDMARK_ONNX, "keypoints"),
        (PALM_ONNX, "keypoints"),
        (MODELS / "default.pt", "mesh_uv"),
        (MODELS / "default.onnx", "mesh_uv"),
    ],
    ids=[
        "none",
        "empty",
        "npz",
        "full-onnx",
        "lite-onnx",
        "palm-onnx",
        "legacy-pt",
        "legacy-onnx",
    ],
)
def test_model_kind_of_the_shipped_files(path, kind: str) -> None:
    assert model_kind(path) == kind


def _onnx_without_metadata(path: Path) -> Path:
    """A valid ONNX model (one Identity node) with no metadata_props."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_model_kind_refuses_missing_junk_and_foreign_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(ModelFileError, match=_named(missing)):
        model_kind(missing)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07 this is no model \xff\xfe" * 50)
    with pytest.raises(ModelFileError, match=_named(junk)):
        model_kind(junk)
    bare = _onnx_without_metadata(tmp_path / "bare.onnx")
    with pytest.raises(ModelFileError, match=_named(bare)) as err:
        model_kind(bare)
    assert "stereo_hand_mesh_keypoints" in str(err.value)  # says what it looked for


# --- bad files and wrong kinds in create_pipeline ----------------------------------------


def _truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _middle_cut(source: Path, path: Path) -> Path:
    """The file with its middle third removed: the head and the tail (where ONNX keeps its
    metadata) are intact, the graph is not."""
    data = source.read_bytes()
    n = len(data)
    path.write_bytes(data[: n // 3] + data[2 * n // 3 :])
    return path


def test_missing_model_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "hand_landmark_missing.onnx"
    with pytest.raises(ModelFileError, match=_named(missing)):
        create_pipeline(SETTINGS, "onnxruntime", model_file_path=missing)
    missing_palm = tmp_path / "palm_missing.onnx"
    with pytest.raises(ModelFileError, match=_named(missing_palm)):
        create_pipeline(SETTINGS, "onnxruntime", palm_file_path=missing_palm)


@pytest.mark.parametrize("damage", ["truncated", "middle-cut"])
def test_corrupt_model_files_are_named(tmp_path: Path, damage: str) -> None:
    cut = _truncated if damage == "truncated" else _middle_cut
    landmarks = cut(LANDMARK_ONNX, tmp_path / "hand_landmark_lite.onnx")
    with pytest.raises(ModelFileError, match=_named(landmarks)):
        create_pipeline(SETTINGS, "onnxruntime", model_file_path=landmarks)
    palm = cut(PALM_ONNX, tmp_path / "palm_detection_lite.onnx")
    with pytest.raises(ModelFileError, match=_named(palm)):
        create_pipeline(SETTINGS, "onnxruntime", palm_file_path=palm)


def test_a_truncated_npz_is_named_by_the_torch_backend(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    weights = _truncated(LANDMARK_NPZ, tmp_path / "hand_landmark_lite.npz")
    with pytest.raises(ModelFileError, match=_named(weights)):
        create_pipeline(SETTINGS, "torch", model_file_path=weights)


def test_files_of_the_wrong_kind_for_the_backend(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"backend 'onnxruntime' expected a \.onnx"):
        create_pipeline(SETTINGS, "onnxruntime", model_file_path=LANDMARK_NPZ)
    with pytest.raises(ConfigError, match=r"backend 'torch' expected a \.npz"):
        create_pipeline(SETTINGS, "torch", model_file_path=LANDMARK_ONNX)
    with pytest.raises(ConfigError, match=r"backend 'onnxruntime' expected a \.onnx palm"):
        create_pipeline(SETTINGS, "onnxruntime", palm_file_path=MODELS / "palm_detection_lite.npz")
    with pytest.raises(ConfigError, match="backend expected one of"):
        create_pipeline(SETTINGS, "openvino")
    with pytest.raises(ConfigError, match="keypoint variant expected one of"):
        create_pipeline(SETTINGS, "onnxruntime", keypoint_variant="heavy")
    # A landmark network given as the palm detector: the input size gives it away.
    with pytest.raises(ModelFileError, match="palm network expected a 192x192 input"):
        create_pipeline(SETTINGS, "onnxruntime", palm_file_path=LANDMARK_ONNX)


def test_a_copied_model_runs_from_its_new_place(tmp_path: Path) -> None:
    # A model file given by path need not sit in models/: the choice names the file used.
    landmarks = shutil.copy(LANDMARK_ONNX, tmp_path / "my_landmarks.onnx")
    choice = create_pipeline(SETTINGS, "onnxruntime", model_file_path=landmarks)
    assert choice.kind == "keypoints" and str(landmarks) in choice.model


# --- runtimes and variants on one pair ----------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> RenderedPair:
    # Source seed 5 pair 3: a hand the shipped networks find (test_pipeline_keypoints.py).
    return next(iter_synthetic_pairs(SynthSettings(domain="source"), 1, seed=5, start=3))


@pytest.fixture(scope="module")
def rig() -> StereoRig:
    return StereoRig.from_camera_info(*STB_BUMBLEBEE2.camera_infos())


def _keypoints_on(
    pipeline: HandMeshPipeline, pair: RenderedPair, crops: StereoCrops
) -> np.ndarray:
    """(2, 21, 2) image pixels: ``pipeline``'s landmark network on the given crops, its x, y
    (continuous crop coordinates, 0 at the crop's edge) mapped back through each crop."""
    batch = np.stack([cut_crop(pair.left, crops.left), cut_crop(pair.right, crops.right)])
    x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), np.float32) / np.float32(255.0)
    raw = pipeline.nets.landmarks.run(x)["landmarks"].reshape(2, 21, 3).astype(np.float64)
    views = (crops.left, crops.right)
    return np.stack([c.to_image(raw[i, :, :2] - 0.5) for i, c in enumerate(views)])


def test_torch_runs_the_shipped_npz_and_agrees_with_onnxruntime(pair, rig) -> None:
    pytest.importorskip("torch")
    torch_choice = create_pipeline(SETTINGS, "torch", keypoint_variant="lite")
    ort_choice = create_pipeline(SETTINGS, "onnxruntime", keypoint_variant="lite")
    assert torch_choice.kind == "keypoints" and torch_choice.reason.startswith("torch-")
    assert "hand_landmark_lite.npz" in torch_choice.model
    assert "palm_detection_lite.npz" in torch_choice.model
    by_torch = torch_choice.pipeline.process(pair.left, pair.right, rig)
    by_ort = ort_choice.pipeline.process(pair.left, pair.right, rig)
    assert by_torch.found and by_ort.found, (by_torch.reason, by_ort.reason)
    # On the same crops the two runtimes read the same keypoints (measured 6e-5 px on the
    # CPU; on a GPU, torch lets cuDNN use TF32 convolutions by default, not measured here).
    ort_on_torch_crops = _keypoints_on(ort_choice.pipeline, pair, by_torch.boxes)
    diff = np.abs(by_torch.keypoints - ort_on_torch_crops)
    where = np.unravel_index(diff.argmax(), diff.shape)  # (view, joint, axis)
    assert diff.max() < 1e-2, f"max |diff| {diff.max():.3g} px at {where}"
    # Each pipeline on its own: the runtimes' palm outputs differ by ~1e-4 px, the crops by
    # as much, and warpAffine samples on a 1/32 px grid, so a crop can read a few pixels
    # differently; the keypoints still agree to a fraction of a pixel (measured 0.04 px on
    # this pair, up to 0.26 px on others after the cold start's refinement; 0.004 without).
    end_to_end = np.abs(by_torch.keypoints - by_ort.keypoints)
    assert end_to_end.max() < 0.5, f"max |diff| {end_to_end.max():.3g} px"
    assert np.abs(by_torch.joints - by_ort.joints).max() < 2e-3  # metres (measured 1e-4)


def test_the_full_variant_runs(pair, rig) -> None:
    choice = create_pipeline(SETTINGS, "onnxruntime", keypoint_variant="full", intra_op_threads=1)
    assert choice.pipeline.nets.variant == "full"
    assert "hand_landmark_full.onnx" in choice.model and "palm_detection_full.onnx" in choice.model
    est = choice.pipeline.process(pair.left, pair.right, rig)
    assert est.found, est.reason
    err = np.linalg.norm(est.joints - pair.annotation["joints"], axis=1)
    assert err.mean() < 0.025, f"mean joint error {1e3 * err.mean():.1f} mm"


def test_auto_variant_follows_the_device() -> None:
    import onnxruntime as ort

    choice = create_pipeline(SETTINGS, "onnxruntime", keypoint_variant="auto")
    gpu = "CUDAExecutionProvider" in ort.get_available_providers()
    assert choice.pipeline.nets.variant == ("full" if gpu else "lite"), choice.reason
    assert f"variant {choice.pipeline.nets.variant}" in choice.reason
