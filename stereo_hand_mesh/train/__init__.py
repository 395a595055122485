"""Training and evaluation: supervised pretraining, self-supervised stereo adaptation, metrics.

Only the metrics live here so far; they are numpy-only, so importing this package does not
import torch.
"""

from stereo_hand_mesh.train.metrics import (
    CONVENTIONS,
    PCK_THRESHOLDS_MM,
    ROOTS,
    auc_from_pck,
    joint_errors_mm,
    joint_metrics,
    palm_center_convention,
    pck_curve,
    root_relative_joints,
)

__all__ = [
    "CONVENTIONS",
    "PCK_THRESHOLDS_MM",
    "ROOTS",
    "auc_from_pck",
    "joint_errors_mm",
    "joint_metrics",
    "palm_center_convention",
    "pck_curve",
    "root_relative_joints",
]
