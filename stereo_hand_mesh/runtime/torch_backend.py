"""torch backend: a checkpoint on the CPU or CUDA, in inference mode, optionally fp16."""

from __future__ import annotations

import os

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.runtime.base import ModelInfo

__all__ = ["TorchBackend"]


class TorchBackend:
    """Run a checkpoint with torch.

    Args:
        checkpoint: checkpoint file, or None for the shipped default.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        fp16: half precision (CUDA only).
        mano_path: the MANO file for MANO-topology models.

    Raises:
        CheckpointError: missing or corrupt checkpoint.
        ConfigError: fp16 on the CPU, or CUDA asked for and absent.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str = "auto",
        fp16: bool = False,
        mano_path: str | os.PathLike[str] | None = None,
    ) -> None:
        import torch

        from stereo_hand_mesh.model.device import resolve_device
        from stereo_hand_mesh.model.loading import NetworkPass, load_model

        self._torch = torch
        self.device = resolve_device(device)
        if fp16 and self.device.type != "cuda":
            raise ConfigError(f"fp16 expected a CUDA device; got {self.device}")
        model, ckpt = load_model(checkpoint, self.device, mano_path)
        self.info = ModelInfo.from_checkpoint_metadata(ckpt.metadata)
        variant = "monocular" if self.info.has_depth_head else "binocular"
        self._net = NetworkPass(model.eval(), variant).eval()
        self.dtype = torch.float16 if fp16 else torch.float32
        if fp16:
            self._net = self._net.half()
        self.name = f"torch-{self.device.type}" + ("-fp16" if fp16 else "")

    def infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(2, 3, S, S) float32 normalized crops -> (2, V, 2) uv, (2, V) depth or None."""
        torch = self._torch
        s = self.info.input_size
        check_shape(crops, (2, 3, s, s), "crops")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, self.dtype)
            uv, rel = self._net(x)
            uv_np = uv.float().cpu().numpy()
            rel_np = rel.float().cpu().numpy() if rel is not None else None
        return uv_np, rel_np
