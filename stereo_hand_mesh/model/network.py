"""The mesh network: a shared-weight encoder per view and a mesh regressor.

Binocular version (the paper's): each view's square crop (N, 3, S, S) goes through the same
encoder; the regressor outputs (u, v) for every template vertex in that crop, as fractions of
the crop side (0 = left/top edge, 1 = right/bottom edge). z comes from disparity between the
two views' u (eq. 1), outside the network. The monocular variant adds a head giving each
vertex's depth relative to the root joint's depth, in metres.

Only standard ops (Conv2d, BatchNorm2d, ReLU, Linear, flatten) so the network exports to
ONNX (opset >= 17) and TensorRT. Size at the default 128x128 input and 1000 vertices: see
:func:`stereo_hand_mesh.model.complexity.count_macs` (about 0.1 GMAC per view).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError

__all__ = ["MeshNet", "MeshNetConfig"]


@dataclass(frozen=True)
class MeshNetConfig:
    """Architecture of :class:`MeshNet`.

    Attributes:
        num_vertices: V, vertices of the template mesh the network regresses.
        input_size: S, side of the square crop in pixels (a multiple of 32).
        widths: channels of the stem and of the four stride-2 stages.
        hidden: width of the regressor's hidden layer.
        monocular: add the root-relative depth head.
        depth_scale_m: the depth head's output is multiplied by this, metres.
    """

    num_vertices: int
    input_size: int = 128
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256)
    hidden: int = 512
    monocular: bool = False
    depth_scale_m: float = 0.05

    def __post_init__(self) -> None:
        if self.num_vertices < 3:
            raise ConfigError(f"num_vertices expected >= 3; got {self.num_vertices}")
        if self.input_size < 64 or self.input_size % 32:
            raise ConfigError(
                f"input_size expected a multiple of 32 and >= 64; got {self.input_size}"
            )
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def to_dict(self) -> dict:
        """Plain-type dict for checkpoint and ONNX metadata."""
        return asdict(self) | {"widths": list(self.widths)}


class _Block(nn.Module):
    """Residual block: 3x3 conv (stride s) -> BN -> ReLU -> 3x3 conv -> BN, plus a shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.short(x))


class MeshNet(nn.Module):
    """Encoder + mesh regressor, applied to each view independently (shared weights).

    Input: (N, 3, S, S) float crops, already normalized (see checkpoint metadata for the
    mean and std). Output: (N, V, 2) uv in crop fractions, and for the monocular variant
    also (N, V) root-relative depth in metres (via :meth:`forward_with_depth`).
    """

    def __init__(self, config: MeshNetConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.stem = nn.Sequential(
            nn.Conv2d(3, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True)
        )
        self.stages = nn.Sequential(
            _Block(w[0], w[1], 2),
            _Block(w[1], w[2], 2),
            _Block(w[2], w[2], 1),
            _Block(w[2], w[3], 2),
            _Block(w[3], w[3], 1),
            _Block(w[3], w[4], 2),
        )
        self.reduce = nn.Sequential(nn.Conv2d(w[4], 64, 1), nn.ReLU(inplace=True))
        side = config.input_size // 32
        self.fc = nn.Sequential(nn.Linear(64 * side * side, config.hidden), nn.ReLU(inplace=True))
        self.uv_head = nn.Linear(config.hidden, 2 * config.num_vertices)
        self.depth_head = (
            nn.Linear(config.hidden, config.num_vertices) if config.monocular else None
        )
        nn.init.zeros_(self.uv_head.weight)
        nn.init.constant_(self.uv_head.bias, 0.5)
        if self.depth_head is not None:
            nn.init.zeros_(self.depth_head.weight)
            nn.init.zeros_(self.depth_head.bias)

    def init_uv_bias(self, mean_uv: torch.Tensor) -> None:
        """Start the regressor at a mean shape: (V, 2) uv in crop fractions."""
        check_shape(mean_uv, (self.config.num_vertices, 2), "mean_uv")
        with torch.no_grad():
            self.uv_head.bias.copy_(mean_uv.reshape(-1).to(self.uv_head.bias))

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalized crops -> (N, hidden) features."""
        s = self.config.input_size
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, s, s):
            raise ShapeError(f"crops expected shape (N, 3, {s}, {s}); got {tuple(crops.shape)}")
        x = self.reduce(self.stages(self.stem(crops)))
        return self.fc(torch.flatten(x, 1))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalized crops -> (N, V, 2) uv, crop fractions."""
        return self.uv_head(self.features(crops)).view(crops.shape[0], -1, 2)

    def forward_with_depth(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Monocular variant: (N, V, 2) uv and (N, V) root-relative depth in metres."""
        if self.depth_head is None:
            raise ConfigError("forward_with_depth expected a monocular MeshNet; got binocular")
        feats = self.features(crops)
        uv = self.uv_head(feats).view(crops.shape[0], -1, 2)
        return uv, self.depth_head(feats) * self.config.depth_scale_m
