"""The mesh network and checkpoint safety."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from stereo_hand_mesh.errors import CheckpointError, ShapeError
from stereo_hand_mesh.model import (
    MeshNet,
    MeshNetConfig,
    count_macs,
    count_parameters,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def net() -> MeshNet:
    torch.manual_seed(0)
    return MeshNet(MeshNetConfig(num_vertices=900, monocular=True)).eval()


def test_shapes_and_budget(net):
    x = torch.randn(2, 3, 128, 128)
    uv = net(x)
    assert uv.shape == (2, 900, 2)
    uv2, z = net.forward_with_depth(x)
    assert z.shape == (2, 900) and torch.equal(uv, uv2)
    assert count_macs(net, x) <= 0.25e9  # 0.5 GFLOPs per view
    assert count_parameters(net) < 4e6


def test_initial_output_is_the_mean_shape(net):
    mean_uv = torch.rand(900, 2)
    fresh = MeshNet(MeshNetConfig(num_vertices=900)).eval()
    fresh.init_uv_bias(mean_uv)
    assert torch.allclose(fresh(torch.randn(3, 3, 128, 128)), mean_uv.expand(3, -1, -1))


def test_wrong_input_shape_is_named(net):
    with pytest.raises(ShapeError, match=r"crops expected shape \(N, 3, 128, 128\)"):
        net(torch.randn(2, 3, 96, 128))


def test_checkpoint_round_trip(tmp_path, net):
    path = save_checkpoint(tmp_path / "m.pt", net, {"topology_hash": "abc", "seed": 3})
    ckpt = load_checkpoint(path)
    assert ckpt.metadata["topology_hash"] == "abc" and ckpt.config == net.config
    again = model_from_checkpoint(ckpt).eval()
    x = torch.randn(1, 3, 128, 128)
    assert torch.equal(again(x), net(x))


def test_corrupt_and_missing_checkpoints(tmp_path, net):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    path = save_checkpoint(tmp_path / "m.pt", net, {"topology_hash": "abc"})
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"trunc\.pt"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected format"):
        load_checkpoint(tmp_path / "other.pt")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('x')",))


def test_checkpoint_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "stereo_hand_mesh.checkpoint", "x": _Evil(marker)}, path)
    with pytest.raises(CheckpointError, match="weights-only") as info:
        load_checkpoint(path)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)  # torch's allowlist said no
    assert not marker.exists()
    # Control: the same file loaded without weights_only runs its code, so the test can fail.
    torch.load(path, weights_only=False)
    assert marker.exists()
