"""Tests of the ONNX export, the backends, the per-pair pipeline and the infer command.

A small real network (random weights, the template hand's topology) is exported to a real
ONNX file and run by real ONNX Runtime and torch; stereo pairs come from the synth command.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_hand_mesh.cli import main as cli_main
from stereo_hand_mesh.data import StereoSetReader
from stereo_hand_mesh.errors import CameraInfoError, ConfigError, ModelFileError, ShapeError
from stereo_hand_mesh.geometry import StereoRig
from stereo_hand_mesh.hand import template_hand
from stereo_hand_mesh.model import MeshNet, MeshNetConfig, save_checkpoint
from stereo_hand_mesh.pipeline import MeshUVPipeline, OneEuroFilter, PipelineSettings
from stereo_hand_mesh.runtime import create_backend
from stereo_hand_mesh.runtime.export import export_onnx, read_onnx_info
from stereo_hand_mesh.runtime.onnxruntime_backend import OnnxRuntimeBackend
from stereo_hand_mesh.runtime.tensorrt_backend import (
    TensorRTBackend,
    engine_key,
    needs_rebuild,
    save_engine,
    tensorrt_available,
)
from stereo_hand_mesh.runtime.torch_backend import TorchBackend

#: ONNX Runtime vs torch on the CPU, crop fractions (1e-5 of a 128-px crop is 0.001 px).
PARITY_ATOL = 1e-5


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    hand = template_hand()
    torch.manual_seed(0)
    config = MeshNetConfig(
        num_vertices=hand.num_vertices, widths=(8, 16, 16, 32, 32), hidden=64, monocular=True
    )
    net = MeshNet(config)
    # A plausible mean shape: the template's rest pose spread over the crop.
    rest = np.asarray(hand.template_vertices)[:, :2]
    mean_uv = 0.5 + 0.35 * (rest - rest.mean(0)) / np.abs(rest - rest.mean(0)).max()
    net.init_uv_bias(torch.tensor(mean_uv, dtype=torch.float32))
    # The regressor starts at zero weights (every input gives the mean shape); a little
    # randomness makes the two views' outputs differ as a trained model's do.
    torch.nn.init.normal_(net.uv_head.weight, std=2e-3)
    root = tmp_path_factory.mktemp("runtime")
    pt = save_checkpoint(root / "tiny.pt", net, {"topology_hash": hand.topology_hash})
    return pt, export_onnx(pt, root / "tiny.onnx")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pairs") / "source"
    # The plain look: the legacy mesh-uv pipeline under test was trained on it.
    args = ["synth", "--domain", "source", "--look", "plain", "--count", "3", "--out", str(out)]
    args += ["--seed", "4"]
    assert cli_main([*args, "--quiet"]) == 0
    return out


def test_onnx_metadata_travels_with_the_model(model_files: tuple[Path, Path]) -> None:
    pt, onnx_path = model_files
    info = read_onnx_info(onnx_path)
    assert info == TorchBackend(pt, "cpu").info
    assert info.input_size == 128 and info.num_vertices == template_hand().num_vertices
    assert info.has_depth_head and info.topology_hash == template_hand().topology_hash


def test_onnxruntime_and_torch_agree(model_files: tuple[Path, Path]) -> None:
    pt, onnx_path = model_files
    x = np.random.default_rng(0).normal(size=(2, 3, 128, 128)).astype(np.float32)
    ort_uv, ort_rel = OnnxRuntimeBackend(onnx_path, "cpu", 1).infer(x)
    pt_uv, pt_rel = TorchBackend(pt, "cpu").infer(x)
    diff = np.abs(ort_uv - pt_uv)
    assert diff.max() < PARITY_ATOL, (
        f"max |uv diff| {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"
    )
    assert np.abs(ort_rel - pt_rel).max() < PARITY_ATOL


def test_bad_model_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07 not a protobuf \xff\xff")
    with pytest.raises(ModelFileError, match=str(bad)):
        OnnxRuntimeBackend(bad)
    with pytest.raises(ModelFileError, match="does not exist"):
        create_backend("auto", tmp_path / "nothing.onnx")
    with pytest.raises(ConfigError, match="backend expected"):
        create_backend("openvino")


def test_onnxruntime_path_imports_no_torch(model_files: tuple[Path, Path], pairs: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from stereo_hand_mesh.runtime import create_backend\n"
        "from stereo_hand_mesh.pipeline import MeshUVPipeline\n"
        "from stereo_hand_mesh.data import StereoSetReader\n"
        "from stereo_hand_mesh.geometry import StereoRig\n"
        "from stereo_hand_mesh.hand import template_hand\n"
        f"c = create_backend('auto', {str(model_files[1])!r})\n"
        "p = MeshUVPipeline(c.backend, np.asarray(template_hand().joint_regressor))\n"
        f"s = StereoSetReader({str(pairs)!r})[0]\n"
        "p.process(s.left, s.right, StereoRig.from_camera_info(s.left_info, s.right_info))\n"
        "print(c.backend.name, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["onnxruntime-cpu", "False"]


def test_tensorrt_cache_key_and_rebuild_reasons(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, onnx_path = model_files
    key = engine_key(onnx_path, "10.3.0", "NVIDIA Orin", fp16=True)
    engine = tmp_path / "model.plan"
    assert needs_rebuild(engine, key, force=False).startswith("no engine at")
    engine.write_bytes(b"engine")
    (tmp_path / "model.plan.json").write_text(json.dumps(key.__dict__))
    assert needs_rebuild(engine, key, force=False) is None
    assert needs_rebuild(engine, key, force=True) == "force_engine_update is set"
    other_gpu = engine_key(onnx_path, "10.3.0", "NVIDIA H200", fp16=True)
    assert "gpu_name" in needs_rebuild(engine, other_gpu, force=False)
    other_trt = engine_key(onnx_path, "8.6.1", "NVIDIA Orin", fp16=True)
    assert "tensorrt_version" in needs_rebuild(engine, other_trt, force=False)
    fp32 = engine_key(onnx_path, "10.3.0", "NVIDIA Orin", fp16=False)
    assert "precision" in needs_rebuild(engine, fp32, force=False)


def test_tensorrt_engine_write_failures_name_the_path(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    key = engine_key(model_files[1], "10.3.0", "NVIDIA Orin", fp16=False)
    good = tmp_path / "cache" / "model.plan"
    save_engine(good, b"engine bytes", key)
    assert good.read_bytes() == b"engine bytes"
    assert needs_rebuild(good, key, force=False) is None  # the sidecar holds the key
    assert [p.name for p in good.parent.iterdir()] == sorted(["model.plan", "model.plan.json"])
    # A directory that cannot be made (a file stands in its way).
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with pytest.raises(ModelFileError, match=re.escape(str(blocker / "model.plan"))):
        save_engine(blocker / "model.plan", b"engine", key)
    # The engine path is a directory: the rename fails and no temporary file is left.
    taken = tmp_path / "taken.plan"
    taken.mkdir()
    with pytest.raises(ModelFileError, match=re.escape(f"engine_file_path {taken} expected")):
        save_engine(taken, b"engine", key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "not_a_dir", "taken.plan"]
    # The sidecar's place is taken: the error names the sidecar.
    side = tmp_path / "side.plan"
    (tmp_path / "side.plan.json").mkdir()
    with pytest.raises(ModelFileError, match=re.escape(f"engine cache key {side}.json")):
        save_engine(side, b"engine", key)


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_tensorrt_missing_is_a_clear_error(model_files: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="tensorrt"):
        TensorRTBackend(model_files[1], tmp_path / "e.plan")
    with pytest.raises(ModelFileError, match="tensorrt"):
        create_backend("tensorrt", model_files[1])


def _no_probe() -> bool:
    raise AssertionError("this probe must not run here")


@pytest.mark.parametrize(
    ("trt", "trt_gpu", "ort_cuda", "torch_cuda", "model", "expected", "reason"),
    [
        (True, True, True, True, None, "tensorrt", "TensorRT and a GPU are available"),
        (True, False, True, True, None, "onnxruntime", "ONNX Runtime has the CUDA provider"),
        (False, None, True, True, None, "onnxruntime", "ONNX Runtime has the CUDA provider"),
        (False, None, False, True, None, "torch", "torch sees a GPU"),
        (False, None, False, True, "m.onnx", "onnxruntime", "ONNX Runtime on the CPU"),
        (False, None, False, False, None, "onnxruntime", "ONNX Runtime on the CPU"),
        (None, None, None, None, "m.pt", "torch", "m.pt is a torch checkpoint"),
    ],
    ids=["trt", "trt-no-device", "ort-cuda", "torch-cuda", "onnx-path-no-torch", "cpu", "pt"],
)
def test_auto_picks_tensorrt_then_ort_cuda_then_torch_cuda_then_ort_cpu(
    monkeypatch: pytest.MonkeyPatch, trt, trt_gpu, ort_cuda, torch_cuda, model, expected, reason
) -> None:
    # Only the availability probes are replaced (None: the probe must not even be asked);
    # the CPU path itself runs for real in the other tests.
    import stereo_hand_mesh.runtime.onnxruntime_backend as ort_mod
    import stereo_hand_mesh.runtime.select as select
    import stereo_hand_mesh.runtime.tensorrt_backend as trt_mod
    from stereo_hand_mesh.runtime.select import choose_auto_backend

    for module, name, value in (
        (trt_mod, "tensorrt_available", trt),
        (select, "_torch_cuda_or_trt", trt_gpu),
        (ort_mod, "cuda_provider_available", ort_cuda),
        (select, "_torch_cuda", torch_cuda),
    ):
        monkeypatch.setattr(module, name, _no_probe if value is None else (lambda v=value: v))
    name, why = choose_auto_backend(Path(model) if model else None)
    assert name == expected and reason in why, (name, why)


def _pipeline(model_files: tuple[Path, Path], **settings) -> MeshUVPipeline:
    backend = OnnxRuntimeBackend(model_files[1], "cpu", 1)
    return MeshUVPipeline(
        backend, np.asarray(template_hand().joint_regressor), PipelineSettings(**settings)
    )


def test_pipeline_outputs_metric_mesh_in_the_left_frame(
    model_files: tuple[Path, Path], pairs: Path
) -> None:
    sample = StereoSetReader(pairs)[0]
    rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
    est = _pipeline(model_files, min_confidence=0.0).process(sample.left, sample.right, rig)
    assert est.found and est.reason == "ok"
    v = template_hand().num_vertices
    assert est.vertices.shape == (v, 3) and est.joints.shape == (21, 3)
    assert np.isfinite(est.vertices).all() and 0.0 <= est.confidence <= 1.0
    assert est.vertex_confidence.shape == (v,)
    # The crops sit on the hand: the mesh lies at the hand's depth, give or take the
    # untrained network's spread.
    gt_depth = float(np.median(sample.vertices[:, 2]))
    assert abs(float(np.median(est.vertices[:, 2])) - gt_depth) < 0.5 * gt_depth
    assert set(est.timings_ms) == {"locate", "crop", "inference", "triangulate"}


def test_low_confidence_means_no_mesh(model_files: tuple[Path, Path], pairs: Path) -> None:
    sample = StereoSetReader(pairs)[1]
    rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
    est = _pipeline(model_files, min_confidence=1.0).process(sample.left, sample.right, rig)
    assert not est.found and est.vertices is None and est.joints is None
    assert "< min_confidence 1.00" in est.reason


def test_no_hand_in_view(model_files: tuple[Path, Path], pairs: Path) -> None:
    sample = StereoSetReader(pairs)[0]
    rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
    grey = np.full_like(sample.left, 90)
    est = _pipeline(model_files).process(grey, grey, rig)
    assert not est.found and est.reason == "no hand found"


def test_pipeline_rejects_mismatched_images(model_files: tuple[Path, Path], pairs: Path) -> None:
    sample = StereoSetReader(pairs)[0]
    rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
    with pytest.raises(ShapeError, match="right image expected"):
        _pipeline(model_files).process(sample.left, sample.right[:-2], rig)


def test_one_euro_filter_smooths_and_follows() -> None:
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.0)
    rng = np.random.default_rng(0)
    still = [
        f(np.array([[0.5, 0.0, 0.6]]) + rng.normal(scale=0.005, size=(1, 3)), t / 30)
        for t in range(60)
    ]
    raw_jitter = 0.005
    assert np.std(np.array(still)[30:, 0, 0]) < 0.5 * raw_jitter
    with pytest.raises(ConfigError):
        OneEuroFilter(min_cutoff_hz=0.0)


def _infer_args(pairs: Path, onnx_path: Path, out: Path) -> list[str]:
    return [
        "infer", "--left", str(pairs / "left" / "000000.png"),
        "--right", str(pairs / "right" / "000000.png"),
        "--left-info", str(pairs / "left.yaml"), "--right-info", str(pairs / "right.yaml"),
        "--model", str(onnx_path), "--min-confidence", "0", "--json", str(out),
    ]  # fmt: skip


def test_infer_command_writes_joints_with_names(
    model_files: tuple[Path, Path], pairs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "infer.json"
    overlay = tmp_path / "overlay.png"
    assert cli_main([*_infer_args(pairs, model_files[1], out), "--overlay", str(overlay)]) == 0
    result = json.loads(out.read_text())
    assert result["found"] and result["backend"] == "onnxruntime-cpu"
    assert result["joint_names"][0] == "wrist" and len(result["joints"]) == 21
    assert len(result["vertices"]) == template_hand().num_vertices
    assert overlay.stat().st_size > 1000
    # Every hand: the legacy mesh network gives one, the top-level one.
    (hand,) = result["hands"]
    assert hand["joints"] == result["joints"] and hand["handedness"] == result["hand_side"]
    assert result["dropped"] == []


def test_infer_bad_inputs(
    model_files: tuple[Path, Path], pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "r.json"
    args = _infer_args(pairs, model_files[1], out)
    missing = [
        a if a != str(pairs / "left" / "000000.png") else str(tmp_path / "no.png") for a in args
    ]
    assert cli_main(missing) == 1
    assert "no.png" in capsys.readouterr().err
    bad_info = tmp_path / "right.yaml"
    text = (pairs / "right.yaml").read_text()
    import yaml

    data = yaml.safe_load(text)
    data["projection_matrix"]["data"][3] = 0.0  # zero baseline
    bad_info.write_text(yaml.safe_dump(data))
    zero = [a if a != str(pairs / "right.yaml") else str(bad_info) for a in args]
    assert cli_main(zero) == 1
    assert "baseline" in capsys.readouterr().err
    corrupt = tmp_path / "bad.onnx"
    corrupt.write_bytes(b"garbage")
    assert cli_main([a if a != str(model_files[1]) else str(corrupt) for a in args]) == 1
    assert "bad.onnx" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(CameraInfoError):
        from stereo_hand_mesh.data.camera_info_yaml import read_camera_info_yaml

        StereoRig.from_camera_info(
            read_camera_info_yaml(pairs / "left.yaml"), read_camera_info_yaml(bad_info)
        )


#: The shipped ONNX stores float16 weights after batch-norm folding; measured deviation from
#: the float16 checkpoint: 2.1e-4 crop fractions (0.027 px of a 128-px crop).
SHIPPED_PARITY_ATOL = 5e-4


def test_shipped_model_comes_as_checkpoint_and_onnx_that_agree() -> None:
    from stereo_hand_mesh.runtime import default_model_files

    pt, onnx_path = default_model_files()
    assert pt.is_file() and onnx_path.is_file(), (pt, onnx_path)
    assert pt.stat().st_size + onnx_path.stat().st_size < 20e6
    ort = create_backend("onnxruntime")
    assert ort.backend.name == "onnxruntime-cpu" and ort.backend.info.input_size == 128
    x = np.random.default_rng(1).normal(size=(2, 3, 128, 128)).astype(np.float32)
    a, a_rel = ort.backend.infer(x)
    b, b_rel = TorchBackend(pt, "cpu").infer(x)
    assert np.abs(a - b).max() < SHIPPED_PARITY_ATOL
    assert np.abs(a_rel - b_rel).max() < 1e-4  # metres


def test_export_command_writes_opset_17_onnx_with_metadata(
    model_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import onnx

    from stereo_hand_mesh.runtime.base import METADATA_KEY

    out = tmp_path / "exported.onnx"
    assert cli_main(["export", "--model", str(model_files[0]), "--onnx", str(out)]) == 0
    proto = onnx.load(str(out))
    opset = {o.domain: o.version for o in proto.opset_import}[""]
    assert opset >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    info = json.loads(meta[METADATA_KEY])
    assert info["input_size"] == 128 and info["topology_hash"] == template_hand().topology_hash
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [
        2, 3, 128, 128,
    ]  # fmt: skip
    assert read_onnx_info(out) == read_onnx_info(model_files[1])
    assert cli_main(["export", "--model", str(model_files[0]), "--onnx", str(out), "--opset",
                     "16"]) == 1  # fmt: skip
    assert "opset expected >= 17; got 16" in capsys.readouterr().err


def test_bench_command_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--json", str(out), "--pairs", "3", "--warmup", "1", "--threads", "1"]
    args += ["--backends", "onnxruntime", "tensorrt"]
    assert cli_main(args) == 0
    payload = json.loads(out.read_text())
    assert {"cpu", "logical_cores", "python"} <= set(payload["machine"])
    tracking, cold, trt = payload["results"]
    assert (tracking["mode"], cold["mode"]) == ("tracking", "cold")
    for ort in (tracking, cold):
        assert ort["backend"] == "onnxruntime-cpu" and ort["available"]
        assert 0 < ort["pipeline_p50_ms"] <= ort["pipeline_p95_ms"]
        for stage in ort["stages"].values():
            assert 0 <= stage["p50_ms"] <= stage["p95_ms"]
    assert {"convert", "detect", "keypoints"} <= set(cold["stages"]), cold["stages"]
    assert payload["config"]["pairs"] == 3 and payload["config"]["variant"] == "lite"
    if not tensorrt_available():
        assert not trt["available"] and "tensorrt" in trt["reason"]
    assert out.with_suffix(".md").read_text().startswith("| backend |")


def test_infer_refuses_mismatched_sizes_and_nan_camera_info(
    pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import cv2
    import yaml

    out = tmp_path / "r.json"
    args = _infer_args(pairs, Path("unused.onnx"), out)
    at = args.index("--model")
    args = args[:at] + args[at + 2 :]  # no --model: the shipped default
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.imread(str(pairs / "right" / "000000.png"))[:240, :320])
    sizes = [a if a != str(pairs / "right" / "000000.png") else str(small) for a in args]
    assert cli_main(sizes) == 1
    assert "--right image expected 640x480 (the --left size); got 320x240" in (
        capsys.readouterr().err
    )
    nan_info = tmp_path / "left_nan.yaml"
    data = yaml.safe_load((pairs / "left.yaml").read_text())
    data["projection_matrix"]["data"][0] = float("nan")
    nan_info.write_text(yaml.safe_dump(data))
    nan = [a if a != str(pairs / "left.yaml") else str(nan_info) for a in args]
    assert cli_main(nan) == 1
    err = capsys.readouterr().err
    assert f"--left-info {nan_info}" in err and "NaN" in err, err
    assert not out.exists()
    assert cli_main(args) == 0
    result = json.loads(out.read_text())
    assert result["model_kind"] == "keypoints", result["model"]
    assert "hand_landmark_lite.onnx" in result["model"], result["model"]
    assert result["backend"] == "onnxruntime-cpu" and result["found"], result["reason"]


def test_network_benchmark_runs_its_cpu_path(model_files: tuple[Path, Path], tmp_path: Path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_network.py"
    out = tmp_path / "network.json"
    args = [sys.executable, str(script), "--model", str(model_files[0]), "--iters", "5"]
    run = subprocess.run(
        [*args, "--warmup", "1", "--device", "cpu", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["config"]["device"] == "cpu" and result["config"]["precision"] == "fp32"
    for figures in result["results"].values():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"]
    assert "cpu" in result["machine"]
    if not torch.cuda.is_available():
        no_gpu = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert no_gpu.returncode == 2
        assert "--device cuda expected a CUDA GPU" in no_gpu.stderr
