"""Tests of pretrain, adapt and eval (stereo_hand_mesh.train) on real synthetic splits and bags.

Small real runs: splits and a bag written by the synth command, a small network, a few steps.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_hand_mano import fake_mano  # noqa: F401  (fixture)

from stereo_hand_mesh.cli import main as cli_main
from stereo_hand_mesh.errors import CheckpointError, ConfigError
from stereo_hand_mesh.geometry.batched import project_points
from stereo_hand_mesh.geometry.branch_meshes import crop_fractions_from_image, meshes_from_uv
from stereo_hand_mesh.model import MeshNet, MeshNetConfig, save_checkpoint
from stereo_hand_mesh.model.loading import default_model_path, hand_topology, load_model
from stereo_hand_mesh.train.adapt import AdaptSettings, adapt
from stereo_hand_mesh.train.crops import load_crop_set
from stereo_hand_mesh.train.evaluate import evaluate
from stereo_hand_mesh.train.pretrain import PretrainSettings, pretrain

SIZE = 64


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train_data")
    out = {}
    for name, domain, seed, extra in (
        ("source", "source", 1, []),
        ("target", "target", 2, []),
        ("bag", "source", 3, ["--bag", "--rate", "30"]),
    ):
        path = root / name
        args = ["synth", "--domain", domain, "--count", "6", "--out", str(path)]
        args += ["--seed", str(seed), "--width", "320", "--height", "240", "--quiet", *extra]
        assert cli_main(args) == 0
        out[name] = path
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    topo = hand_topology()
    torch.manual_seed(0)
    config = MeshNetConfig(
        num_vertices=topo.num_vertices,
        input_size=SIZE,
        widths=(8, 8, 16, 16, 32),
        hidden=64,
        monocular=True,
    )
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_checkpoint(path, MeshNet(config), {"topology_hash": topo.topology_hash})
    return path


def test_meshes_from_uv_inverts_the_projection() -> None:
    gen = torch.Generator().manual_seed(0)
    verts = torch.rand(2, 50, 3, generator=gen, dtype=torch.float64) * 0.1
    verts[..., 2] += 0.4
    k = torch.tensor([[822.79, 822.79, 318.47, 250.31]] * 2, dtype=torch.float64)
    baseline = torch.tensor([0.12, 0.06], dtype=torch.float64)
    shift = torch.zeros_like(verts)
    shift[..., 0] = baseline[:, None]
    box_l = torch.tensor([[200.0, 150.0, 180.0], [250.0, 100.0, 120.0]], dtype=torch.float64)
    box_r = box_l - torch.tensor([[90.0, 0.0, 0.0]], dtype=torch.float64)
    frac_l = crop_fractions_from_image(project_points(verts, k), box_l)
    frac_r = crop_fractions_from_image(project_points(verts - shift, k), box_r)
    meshes = meshes_from_uv(frac_l, frac_r, box_l, box_r, k, k, baseline)
    assert torch.allclose(meshes.left, verts, atol=1e-9)
    assert torch.allclose(meshes.right, verts, atol=1e-9)


def test_crops_without_ground_truth_never_carry_labels(splits: dict[str, Path]) -> None:
    crops = load_crop_set(splits["target"], SIZE)
    assert crops.vertices is None and crops.joints is None
    assert len(crops) + crops.skipped == 6
    assert crops.image_left.shape[1:] == (3, SIZE, SIZE)
    # Rectified pair: both crops of a pair share rows and scale.
    assert torch.equal(crops.box_left[:, 1:], crops.box_right[:, 1:])


def test_pretrain_learns_and_resumes_to_the_same_weights(
    splits: dict[str, Path], tmp_path: Path
) -> None:
    crops = load_crop_set(
        splits["source"],
        SIZE,
        ground_truth=True,
        box_source="ground_truth",
        copies=2,
        jitter=0.05,
    )
    settings = PretrainSettings(epochs=3, batch_size=4, lr=1e-3, save_every=2, log_every=1)
    cpu = torch.device("cpu")
    straight = pretrain(crops, tmp_path / "a.pt", settings, cpu, progress=False)
    # Interrupted after 2 steps (as a kill after a save would leave it), then resumed.
    part = tmp_path / "b.pt"
    pretrain(crops, part, settings, cpu, progress=False, stop_after=2)
    _, ckpt = load_model(part, cpu)
    assert ckpt.training["step"] == 2 and not ckpt.training["finished"]
    pretrain(crops, part, settings, cpu, progress=False)
    a, b = load_model(straight, cpu)[1], load_model(part, cpu)[1]
    assert b.training["finished"] and b.training["step"] == a.training["step"] == 9
    for name, value in a.state_dict.items():
        assert torch.allclose(value.float(), b.state_dict[name].float(), atol=1e-6), name
    rows = (tmp_path / "a.pt.csv").read_text().strip().splitlines()
    losses = [float(r.split(",")[-2]) for r in rows[1:]]
    assert len(losses) == 9 and np.mean(losses[-3:]) < np.mean(losses[:3])
    # A finished run is not overwritten by accident.
    with pytest.raises(ConfigError, match="finished"):
        pretrain(crops, straight, settings, cpu, progress=False)


def test_adapt_never_reads_ground_truth(
    splits: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    stripped = tmp_path / "stripped"
    shutil.copytree(splits["target"], stripped)
    (stripped / "annotations.npz").unlink()
    settings = AdaptSettings(epochs=2, batch_size=2, lr=1e-3)
    cpu = torch.device("cpu")
    outs = []
    for name, data in (("with", splits["target"]), ("without", stripped)):
        out = tmp_path / f"{name}.pt"
        adapt(data, out, settings, cpu, init=tiny_model, progress=False, size=SIZE)
        outs.append(load_model(out, cpu)[1])
    init = load_model(tiny_model, cpu)[1]
    changed = False
    for name, value in outs[0].state_dict.items():
        assert torch.equal(value, outs[1].state_dict[name]), name
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            # BatchNorm frozen by default: the source statistics stay.
            assert torch.equal(value, init.state_dict[name]), name
        else:
            changed |= not torch.equal(value, init.state_dict[name])
    assert changed, "adaptation left every weight unchanged"
    assert outs[0].training["finished"]
    assert outs[0].metadata["provenance"]["settings"]["freeze_batchnorm"] is True
    assert outs[0].metadata["provenance"]["settings"]["mesh_unit_m"] == 1.0
    # With BatchNorm in train mode its statistics move to the target pairs.
    thawed = tmp_path / "thawed.pt"
    adapt(
        stripped, thawed, replace(settings, epochs=1, freeze_batchnorm=False), cpu,
        init=tiny_model, progress=False, size=SIZE,
    )  # fmt: skip
    stats = load_model(thawed, cpu)[1].state_dict
    moved = [k for k in stats if k.endswith("running_mean")]
    assert any(not torch.equal(stats[k], init.state_dict[k]) for k in moved)


def test_adapt_on_a_synth_bag_with_a_dropped_loss(
    splits: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bag.pt"
    code = cli_main(
        [
            "adapt",
            "--data",
            str(splits["bag"]),
            "--out",
            str(out),
            "--init",
            str(tiny_model),
            "--drop",
            "photo",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--size",
            str(SIZE),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert code == 0
    _, ckpt = load_model(out, torch.device("cpu"))
    assert ckpt.metadata["provenance"]["settings"]["drop"] == ["photo"]
    log = (tmp_path / "bag.pt.csv").read_text().splitlines()
    assert log[0].startswith("step,epoch,photo_left")


def test_adapt_refuses_a_corrupt_checkpoint_and_keeps_it(
    splits: dict[str, Path], tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "corrupt.pt"
    out.write_bytes(b"\x80\x04 this is not a checkpoint")
    code = cli_main(
        [
            "adapt",
            "--data",
            str(splits["target"]),
            "--out",
            str(out),
            "--init",
            str(tiny_model),
            "--size",
            str(SIZE),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert code == 1
    assert "could not be loaded safely" in capsys.readouterr().err
    assert out.read_bytes() == b"\x80\x04 this is not a checkpoint"
    with pytest.raises(CheckpointError):
        load_model(out, torch.device("cpu"))


def test_adapt_rejects_unknown_loss_names() -> None:
    with pytest.raises(ConfigError, match="drop expected names"):
        AdaptSettings(drop=("photometric",))


def test_eval_writes_metrics_json(
    splits: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval.json"
    code = cli_main(
        [
            "eval",
            "--data",
            str(splits["target"]),
            "--model",
            str(tiny_model),
            "--size",
            str(SIZE),
            "--device",
            "cpu",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    m = result["metrics"]
    assert m["count"] == result["pairs"] > 0
    assert np.isfinite(m["mean_joint_error_mm"]) and m["mean_joint_error_mm"] > 0
    direct = evaluate(splits["target"], tiny_model, torch.device("cpu"), size=SIZE)
    assert direct["metrics"]["mean_joint_error_mm"] == pytest.approx(m["mean_joint_error_mm"])


def test_shipped_default_model_loads() -> None:
    path = default_model_path()
    if not path.is_file():
        pytest.fail(f"the default model is missing at {path}")
    model, ckpt = load_model(None, torch.device("cpu"))
    assert ckpt.metadata["topology_hash"] == hand_topology().topology_hash
    assert ckpt.training.get("finished") is True
    x = torch.zeros(2, 3, model.config.input_size, model.config.input_size)
    assert model.eval()(x).shape == (2, hand_topology().num_vertices, 2)


def test_pretrain_under_torchrun_with_two_gloo_processes(
    splits: dict[str, Path], tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp.pt"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "stereo_hand_mesh.cli",
        "pretrain", "--data", str(splits["source"]), "--out", str(out), "--epochs", "2",
        "--batch-size", "4", "--size", str(SIZE), "--device", "cpu", "--quiet",
        "--binocular-only",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, ckpt = load_model(out, torch.device("cpu"))
    assert ckpt.training["finished"] and ckpt.metadata["provenance"]["world_size"] == 2
    # Rank 0 alone wrote the log: one header and the final step's row (log every 20).
    rows = (tmp_path / "ddp.pt.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 2, rows


def test_pretrain_on_freihand_with_mano_topology(tmp_path: Path, fake_mano) -> None:  # noqa: F811
    from test_data_freihand import _write_freihand

    root = tmp_path / "freihand"
    root.mkdir()
    _write_freihand(root)
    pkl = fake_mano[0]
    out = tmp_path / "mano.pt"
    args = ["pretrain", "--data", str(root), "--out", str(out), "--epochs", "2"]
    args += ["--batch-size", "2", "--size", str(SIZE), "--device", "cpu", "--quiet"]
    assert cli_main(args) == 1  # no --mano: refused, nothing written
    assert not out.exists()
    assert cli_main([*args, "--mano", str(pkl)]) == 0
    cpu = torch.device("cpu")
    with pytest.raises(CheckpointError, match="--mano"):
        load_model(out, cpu)
    model, ckpt = load_model(out, cpu, mano_path=pkl)
    assert ckpt.metadata["hand_model"] == "mano" and model.config.num_vertices == 778
    assert ckpt.metadata["topology_hash"] == hand_topology(pkl).topology_hash
    assert model.depth_head is not None and ckpt.training["finished"]


def test_adapt_killed_mid_run_resumes_from_its_last_checkpoint(
    splits: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed.pt"
    args = [
        sys.executable, "-m", "stereo_hand_mesh.cli", "adapt", "--data", str(splits["target"]),
        "--out", str(out), "--init", str(tiny_model), "--epochs", "100", "--batch-size", "2",
        "--size", str(SIZE), "--device", "cpu", "--threads", "1", "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cpu = torch.device("cpu")
    _, saved = load_model(out, cpu)  # the atomic write left a whole checkpoint
    assert not saved.training["finished"] and saved.training["step"] % 100 == 0
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, done = load_model(out, cpu)
    assert done.training["finished"] and done.training["step"] == done.training["total_steps"]
    # Each step is logged once: rows the killed process wrote after its checkpoint are gone.
    steps = [int(r.split(",")[0]) for r in (tmp_path / "killed.pt.csv").read_text().split()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == done.training["step"]
