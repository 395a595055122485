"""Self-supervised validation: how consistent a model's stereo meshes are on unlabelled pairs.

The adaptation node uses it to decide whether an adapted model is better than the one it
started from, on held-out recorded pairs, with no labels. The score is the loss of eq. 10
without its edge term: the edge loss compares with the initial model's own meshes, so it is
zero for the initial model by construction and would decide the comparison by itself.
Photo-consistency, Laplacian, mask, Chamfer and normal terms keep the paper's weights.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from stereo_hand_mesh.losses import StereoLossSettings, StereoLossWeights
from stereo_hand_mesh.losses.stereo import stereo_self_supervised_loss
from stereo_hand_mesh.train.common import load_model, predict_meshes, topology_of
from stereo_hand_mesh.train.crops import load_crop_set

__all__ = ["VALIDATION_WEIGHTS", "self_supervised_score"]

#: Eq. 10's weights without the edge term (see the module docstring).
VALIDATION_WEIGHTS = replace(StereoLossWeights(), edge=0.0)


@torch.no_grad()
def self_supervised_score(
    data: str | os.PathLike[str],
    model_path: str | os.PathLike[str] | None,
    device: torch.device,
    batch_size: int = 16,
    size: int = 128,
    limit: int | None = None,
) -> dict[str, Any]:
    """Mean self-supervised loss of a model on unlabelled stereo pairs (lower is better).

    Args:
        data: split, bag or recording; read without ground truth.
        model_path: checkpoint (None: the shipped default).
        device: torch device.
        batch_size: pairs per batch.
        size: crop side, pixels.
        limit: use at most this many pairs.

    Returns:
        ``{"score": float, "terms": {name: float}, "pairs": int, "skipped": int}``
        (term values are unweighted means; ``score`` is their weighted sum).
    """
    from stereo_hand_mesh.train.common import default_model_path

    path = Path(model_path) if model_path is not None else default_model_path()
    model, ckpt = load_model(path, device)
    topology = topology_of(ckpt, None, str(path))
    model.eval()
    crops = load_crop_set(data, size, ground_truth=False, limit=limit)
    norm = ckpt.metadata.get("normalization")
    settings = StereoLossSettings(weights=VALIDATION_WEIGHTS)
    faces = topology.faces.to(device)
    sums: dict[str, float] = {}
    count = 0
    for start in range(0, len(crops), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(crops)))
        batch = crops.batch(rows, device)
        meshes = predict_meshes(model, batch, normalization=norm, topology=topology)
        terms = stereo_self_supervised_loss(
            meshes.left,
            meshes.right,
            meshes.left,  # no edge term (weight 0): its pseudo-labels do not matter
            meshes.right,
            faces,
            batch,
            settings,
        )
        n = len(rows)
        for key, value in terms.as_dict().items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
        sums["score"] = sums.get("score", 0.0) + float(terms.total) * n
        count += n
    means = {k: v / max(count, 1) for k, v in sums.items()}
    score = means.pop("score", float("nan"))
    return {
        "score": score,
        "terms": means,
        "weights": VALIDATION_WEIGHTS.__dict__,
        "pairs": count,
        "skipped": crops.skipped,
        "model": str(path),
    }
