"""Self-supervised adaptation of the keypoint network (train/adapt_keypoints.py): the chain's
gradients reach the network, the trained weights round-trip through the model files, the
command writes its model, log and report, and bad input is refused or the old model kept."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from node_process import BIN

from stereo_hand_mesh.data.bags import write_stereo_bag
from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
from stereo_hand_mesh.data.synth import SynthSettings, as_stereo_sample, iter_synthetic_pairs
from stereo_hand_mesh.errors import ConfigError, DataError
from stereo_hand_mesh.model.tflite_graph import (
    _pad,
    graph_with_weights,
    load_tflite_graph_net,
    save_tflite_graph_npz,
)
from stereo_hand_mesh.pipeline import PipelineSettings
from stereo_hand_mesh.pipeline.factory import create_pipeline
from stereo_hand_mesh.runtime.keypoint_nets import keypoint_model_files
from stereo_hand_mesh.train.adapt_keypoints import (
    KeypointAdaptSettings,
    adapt_keypoint_network,
    adapt_keypoints,
    branch_meshes,
    keypoint_score,
    prepare_adapt_pairs,
    trainable_parameters,
)

NPZ = keypoint_model_files("lite")["landmarks_npz"]


@pytest.fixture(scope="module")
def samples():
    """Source-domain pairs at 640x480 (the real-trained network finds most of them)."""
    rig = rig_for_size(640, 480, None)
    li, ri = rig.camera_infos()
    pairs = iter_synthetic_pairs(SynthSettings(domain="source", rig=rig), 12, seed=3)
    return [dataclasses.replace(as_stereo_sample(p, i, li, ri), joints=None, vertices=None)
            for i, p in enumerate(pairs)]  # fmt: skip


@pytest.fixture(scope="module")
def pairs(samples):
    pipeline = create_pipeline(
        PipelineSettings(smoothing=False, tracking=False), "onnxruntime", None,
        intra_op_threads=2,
    ).pipeline  # fmt: skip
    prepared = prepare_adapt_pairs(samples, pipeline, loss_crop=64)
    assert len(prepared) >= 6, prepared.skipped
    return prepared


def test_the_constant_pad_passes_gradients():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _pad(t, (0, 1, 0, 1)), (x,))
    assert torch.autograd.gradcheck(lambda t: _pad(t, (2, 1, 1, 0), -1.0), (x,))


def test_trained_weights_round_trip_through_the_npz(tmp_path):
    net = load_tflite_graph_net(NPZ)
    params = trainable_parameters(net, "all")
    assert sum(p.numel() for p in params) > 500_000
    with torch.no_grad():
        for p in params:
            p.add_(1e-3 * torch.randn_like(p))
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        want = net(x)
    save_tflite_graph_npz(graph_with_weights(net), tmp_path / "t.npz", net.output_names, {})
    with torch.no_grad():
        got = load_tflite_graph_net(tmp_path / "t.npz")(x)
        base = load_tflite_graph_net(NPZ)(x)
    for key in want:
        assert torch.equal(want[key], got[key]), key
    assert not torch.equal(want["landmarks"], base["landmarks"])  # the change was kept


@pytest.mark.parametrize("layers", ["head", "late", "all"])
def test_trainable_layers(layers):
    net = load_tflite_graph_net(NPZ)
    params = trainable_parameters(net, layers)
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert len(trainable) == len(params) > 0
    counts = {"head": 0, "late": 0, "all": 0}
    counts[layers] = sum(p.numel() for p in params)
    assert counts[layers] > 0


def test_gradients_reach_the_network_through_the_fit(pairs):
    net = load_tflite_graph_net(NPZ)
    params = trainable_parameters(net, "late")
    part = pairs.subset(torch.arange(3))
    out = branch_meshes(net, part, "binocular", KeypointAdaptSettings())
    assert out.left.shape == out.right.shape and out.left.shape[0] == 3
    (out.left[..., 2].mean() + out.right[..., 0].mean()).backward()
    grads = [p.grad for p in params if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert max(float(g.abs().max()) for g in grads) > 0


def test_the_initial_network_reproduces_the_pipeline_keypoints(pairs):
    """The torch chain reads the stored crops as the pipeline did (ORT): same keypoints."""
    net = load_tflite_graph_net(NPZ)
    with torch.no_grad():
        out = branch_meshes(
            net, pairs.subset(torch.arange(4)), "binocular", KeypointAdaptSettings()
        )
    err = (out.keypoints - pairs.keypoints[:4]).abs().max()
    assert float(err) < 0.05, float(err)


def test_a_diverging_run_is_stopped_and_its_weights_put_back(pairs):
    net = load_tflite_graph_net(NPZ)
    before = [p.detach().clone() for p in trainable_parameters(net, "all")]
    settings = KeypointAdaptSettings(lr=5.0, layers="all", epochs=3, divergence_ratio=1.5)
    result = adapt_keypoint_network(net, pairs, settings, batch_size=4)
    assert result.diverged is not None, result
    after = [p.detach() for p in trainable_parameters(net, "all")]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_a_short_run_logs_and_scores(pairs, tmp_path):
    net = load_tflite_graph_net(NPZ)
    settings = KeypointAdaptSettings(epochs=1)
    result = adapt_keypoint_network(
        net, pairs, settings, batch_size=4, log_path=tmp_path / "l.csv"
    )
    assert result.diverged is None and result.steps == -(-len(pairs) // 4)
    rows = (tmp_path / "l.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,photo_left") and len(rows) == result.steps + 1
    score = keypoint_score(net, pairs)
    assert np.isfinite(score["score"]) and score["pairs"] == len(pairs)
    assert 0 < score["fit_residual"] < 0.2 and 0 <= score["row_disagreement"] < 0.2


def test_settings_refuse_bad_values():
    for bad in ({"lr": 0.0}, {"layers": "some"}, {"keypoint_weight": -1.0},
                {"other_view_weight": 2.0}, {"epochs": 0}, {"divergence_ratio": 1.0}):  # fmt: skip
        with pytest.raises(ConfigError):
            KeypointAdaptSettings(**bad)


def test_adapt_command_writes_model_log_and_report(samples, tmp_path):
    split = tmp_path / "bag"
    write_stereo_bag(split, samples, 5.0)
    out = tmp_path / "adapted.onnx"
    run = subprocess.run(
        [str(BIN / "stereo-hand-mesh"), "adapt", "--data", str(split), "--out", str(out),
         "--epochs", "1", "--threads", "2", "--quiet", "--validation-fraction", "0.34"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["decision"] in run.stdout
    assert report["chosen"] in ("current", "calibrated", "adapted")
    assert report["pairs_validation"] >= 3 and report["pairs_adapted"] >= 3
    for name in ("current", "calibrated", "adapted"):
        assert np.isfinite(report["validation"][name]["score"])
    assert out.is_file() and out.with_suffix(".npz").is_file()
    assert out.with_suffix(".csv").read_text().startswith("step,")
    # The written model is a product model: the pipeline loads and runs it.
    choice = create_pipeline(PipelineSettings(), "onnxruntime", out, intra_op_threads=2)
    assert choice.kind == "keypoints"
    # An existing output is not overwritten.
    again = subprocess.run(
        [str(BIN / "stereo-hand-mesh"), "adapt", "--data", str(split), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 1 and "exists" in again.stderr


def _blank(sample):
    """The pair without a hand (grey images)."""
    left = np.full_like(sample.left, 90)
    return dataclasses.replace(sample, left=left, right=left.copy())


def test_adapt_refuses_a_recording_without_a_hand(samples, tmp_path):
    bag = tmp_path / "empty"
    write_stereo_bag(bag, [_blank(s) for s in samples[:5]], 5.0)
    with pytest.raises(DataError, match="finds a hand; got none"):
        adapt_keypoints(bag, tmp_path / "a.onnx", KeypointAdaptSettings(epochs=1), progress=False)
    assert not (tmp_path / "a.onnx").exists()


def test_adapt_refuses_a_single_pair(samples, tmp_path):
    bag = tmp_path / "one"
    write_stereo_bag(bag, samples[:1], 5.0)
    with pytest.raises(DataError, match="at least 4 pairs"):
        adapt_keypoints(bag, tmp_path / "a.onnx", KeypointAdaptSettings(epochs=1), progress=False)


def test_adapt_refuses_a_camera_that_changes_midway(samples, tmp_path):
    """The second half of the bag comes from a rig with another baseline."""
    wide = rig_for_size(640, 480, 0.2).camera_infos()
    other = [dataclasses.replace(s, left_info=wide[0], right_info=wide[1]) for s in samples[3:6]]
    bag = tmp_path / "changing"
    write_stereo_bag(bag, [*samples[:3], *other], 5.0)
    with pytest.raises(DataError, match="camera_info changes at pair 3"):
        adapt_keypoints(bag, tmp_path / "a.onnx", KeypointAdaptSettings(epochs=1), progress=False)


def test_adapt_refuses_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match=r"\.onnx"):
        adapt_keypoints(tmp_path, tmp_path / "a.pt", KeypointAdaptSettings(), progress=False)
    with pytest.raises(ConfigError, match="output"):
        adapt_keypoints(
            tmp_path, tmp_path / "a.onnx", KeypointAdaptSettings(), output="x", progress=False
        )


def test_cli_layer_choices_match_the_library():
    from stereo_hand_mesh.cli.train import LAYER_CHOICES as CLI
    from stereo_hand_mesh.train.adapt_keypoints import LAYER_CHOICES

    assert CLI == LAYER_CHOICES


def test_adapt_legacy_path_is_kept_for_pt(tmp_path):
    """--out X.pt still runs the legacy mesh network (the paper's experiment)."""
    run = subprocess.run(
        [str(BIN / "stereo-hand-mesh"), "adapt", "--data", str(tmp_path), "--out",
         str(tmp_path / "x.ckpt")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1 and "X.onnx" in run.stderr and "X.pt" in run.stderr


def test_prepare_keeps_the_product_fits(pairs):
    assert len(pairs.fits) == len(pairs) and pairs.confidence.shape == (len(pairs),)
    assert pairs.image_size == (640, 480)
    assert Path(NPZ).is_file()


def test_adapt_refuses_images_that_disagree_with_their_camera_info(samples, tmp_path):
    """Images of another size than their camera_info: refused, naming both sizes."""
    small = [
        dataclasses.replace(s, left=s.left[::2, ::2].copy(), right=s.right[::2, ::2].copy())
        for s in samples[:4]
    ]
    bag = tmp_path / "small"
    write_stereo_bag(bag, small, 5.0)
    with pytest.raises(
        DataError, match="expected the camera_info size 640x480; got an image of 320x240"
    ):
        adapt_keypoints(bag, tmp_path / "a.onnx", KeypointAdaptSettings(epochs=1), progress=False)
