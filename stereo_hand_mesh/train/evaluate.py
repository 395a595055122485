"""Evaluation: 3D joint metrics of a model on a labelled stereo source.

Crops come from the hand masks exactly as in adapt (no label is used to place them); the
labels are read only to score. Joints are the regressor applied to the average of the two
branches' meshes, in the left optical frame (what the product publishes).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from stereo_hand_mesh.train.common import (
    HandTopology,
    hand_topology,
    load_model,
    predict_all_meshes,
    topology_of,
)
from stereo_hand_mesh.train.crops import CropSet, load_crop_set
from stereo_hand_mesh.train.metrics import joint_metrics

__all__ = ["evaluate", "evaluate_crops"]


@torch.no_grad()
def evaluate_crops(
    model: torch.nn.Module,
    crops: CropSet,
    device: torch.device,
    variant: str = "binocular",
    batch_size: int = 32,
    normalization: dict[str, Any] | None = None,
    topology: HandTopology | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` (eval mode) on a labelled crop set.

    Returns:
        ``{"metrics": joint_metrics(...), "vertex_error_mm": float, "pairs": N}``.
    """
    topo = topology or hand_topology()
    left, right = predict_all_meshes(
        model, crops, device, variant, batch_size, normalization, topo
    )
    mean = 0.5 * (left + right)
    pred = topo.joints(mean).double().numpy()
    gt = crops.joints.double().numpy()
    vert_err = np.linalg.norm(mean.double().numpy() - crops.vertices.double().numpy(), axis=-1)
    return {
        "metrics": joint_metrics(pred, gt),
        "vertex_error_mm": float(vert_err.mean() * 1e3),
        "pairs": len(crops),
        "skipped_pairs": crops.skipped,
    }


def evaluate(
    data: str | os.PathLike[str],
    model_path: str | os.PathLike[str] | None,
    device: torch.device,
    variant: str = "binocular",
    batch_size: int = 32,
    limit: int | None = None,
    size: int = 128,
    progress: bool = True,
    mano_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_crops` of a checkpoint (default: shipped) on a split or bag."""
    model, ckpt = load_model(model_path, device, mano_path)
    topology = topology_of(ckpt, mano_path, str(model_path))
    crops = load_crop_set(data, size, ground_truth=True, limit=limit)
    result = evaluate_crops(
        model, crops, device, variant, batch_size, ckpt.metadata.get("normalization"), topology
    )
    return {
        "data": str(data),
        "model": str(model_path) if model_path is not None else "default",
        "variant": variant,
        "model_provenance": ckpt.metadata.get("provenance", {}),
        **result,
    }
