"""3D joint metrics: mean joint error, root-relative error, 3D PCK and its AUC (numpy only).

Inputs are metres (the product's unit); every reported number is millimetres or a fraction.

Conventions:
    ``"ours"``: both skeletons in our 21-joint order with a wrist at index 0.
    ``"stb"``: both in our order, but the ground truth holds STB's **palm center** at index 0
    (e.g. ``joints_stb_order[..., STB_TO_OURS, :]`` or :func:`palm_center_convention` of an STB
    sample's ``joints``). The prediction's index 0 is replaced by its own palm center (the
    midpoint of wrist and middle_mcp) before comparison, as STB evaluations do.

Frames where the prediction holds a NaN (no hand found) are counted in ``missing`` and left
out of every average; they do not poison the mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.hand.joints import JOINT_NAMES, NUM_JOINTS, WRIST, palm_center

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

CONVENTIONS: tuple[str, ...] = ("ours", "stb")
ROOTS: tuple[str, ...] = ("wrist", "palm_center")

#: 20, 21, ..., 50 mm: the thresholds of the usual STB 3D PCK curve.
PCK_THRESHOLDS_MM: np.ndarray = np.arange(20.0, 51.0, 1.0)


def palm_center_convention(joints: np.ndarray) -> np.ndarray:
    """Put the palm center in the wrist slot (STB convention, our order otherwise).

    Args:
        joints: (*, 21, 3) joints in our order, any unit.

    Returns:
        (*, 21, 3) copy whose index 0 is the midpoint of wrist and middle_mcp.
    """
    check_shape(joints, ("*", NUM_JOINTS, 3), "joints")
    out = np.array(joints, dtype=np.float64, copy=True)
    out[..., WRIST, :] = palm_center(np.asarray(joints, dtype=np.float64))
    return out


def root_relative_joints(joints: np.ndarray, root: str = "wrist") -> np.ndarray:
    """Subtract the root joint from every joint.

    Args:
        joints: (*, 21, 3) joints in our order.
        root: ``"wrist"`` (index 0 as it stands; in the STB convention that slot already holds
            the palm center) or ``"palm_center"`` (midpoint of index 0 and middle_mcp).

    Returns:
        (*, 21, 3) joints relative to the root, same unit.
    """
    check_shape(joints, ("*", NUM_JOINTS, 3), "joints")
    joints = np.asarray(joints, dtype=np.float64)
    if root == "wrist":
        origin = joints[..., WRIST, :]
    elif root == "palm_center":
        origin = palm_center(joints)
    else:
        raise ConfigError(f"root expected one of {ROOTS}; got {root!r}")
    return joints - origin[..., None, :]


def joint_errors_mm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean error of each joint, in millimetres.

    Args:
        pred: (N, J, 3) predicted joints, metres.
        gt: (N, J, 3) ground-truth joints, metres.

    Returns:
        (N, J) errors in mm (NaN where ``pred`` is NaN).
    """
    check_shape(pred, ("N", "J", 3), "pred")
    check_shape(gt, ("N", "J", 3), "gt")
    if pred.shape != gt.shape:
        raise ShapeError(f"pred expected the shape of gt {gt.shape}; got {pred.shape}")
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64)
    return 1000.0 * np.linalg.norm(diff, axis=-1)


def pck_curve(errors_mm: np.ndarray, thresholds_mm: np.ndarray = PCK_THRESHOLDS_MM) -> np.ndarray:
    """Fraction of joints whose error is at most each threshold (3D PCK).

    Args:
        errors_mm: (*,) joint errors in mm, any shape; NaN entries are ignored.
        thresholds_mm: (T,) thresholds in mm.

    Returns:
        (T,) fractions in [0, 1] (NaN if there is no finite error).
    """
    errors = np.asarray(errors_mm, dtype=np.float64).reshape(-1)
    errors = errors[np.isfinite(errors)]
    thresholds = np.asarray(thresholds_mm, dtype=np.float64).reshape(-1)
    if errors.size == 0:
        return np.full(thresholds.shape, np.nan)
    return (errors[None, :] <= thresholds[:, None]).mean(axis=1)


def auc_from_pck(thresholds_mm: np.ndarray, fractions: np.ndarray) -> float:
    """Area under a PCK curve by the trapezoidal rule, normalized to [0, 1].

    The area is divided by the threshold range ``thresholds[-1] - thresholds[0]``, so a curve
    that is 1 everywhere gives 1.

    Args:
        thresholds_mm: (T,) increasing thresholds, T >= 2.
        fractions: (T,) PCK values at the thresholds.
    """
    t = np.asarray(thresholds_mm, dtype=np.float64).reshape(-1)
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if t.size < 2 or f.shape != t.shape or not np.all(np.diff(t) > 0):
        raise ShapeError(
            f"PCK curve expected >= 2 increasing thresholds and as many fractions; got "
            f"{t.size} thresholds and {f.size} fractions"
        )
    area = float(np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(t)))
    return area / float(t[-1] - t[0])


def _finite_mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def joint_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    convention: str = "ours",
    root: str | None = None,
    thresholds_mm: np.ndarray = PCK_THRESHOLDS_MM,
) -> dict[str, Any]:
    """Mean joint error, root-relative error, per-joint errors and 3D PCK/AUC.

    Args:
        pred: (N, 21, 3) predicted joints in metres, our order; a frame with any NaN counts as
            missing (no hand found).
        gt: (N, 21, 3) ground-truth joints in metres, our order (index 0 = palm center when
            ``convention="stb"``); must be finite.
        convention: ``"ours"`` or ``"stb"`` (see the module docstring).
        root: root for the root-relative error: ``"wrist"`` or ``"palm_center"``; None picks
            ``"wrist"`` for ``"ours"`` and ``"palm_center"`` for ``"stb"``. With ``"stb"``
            only ``"palm_center"`` is possible (STB has no wrist).
        thresholds_mm: (T,) PCK thresholds in mm; the AUC is over their range.

    Returns:
        JSON-serializable dict:

        - ``count``: frames evaluated (N minus missing); ``missing``: NaN frames; ``total``: N.
        - ``mean_joint_error_mm``: mean absolute (camera frame) 3D joint error.
        - ``median_joint_error_mm``.
        - ``root_relative_error_mm``: mean error after aligning both roots; ``root``: the
          root used; ``convention``.
        - ``pck``: list of ``[threshold_mm, fraction]`` on absolute errors; ``auc_20_50``:
          its normalized AUC (named for the default 20-50 mm range).
        - ``pck_root_relative`` and ``auc_20_50_root_relative``: the same on root-relative
          errors.
        - ``per_joint_mm``: joint name -> mean absolute error (index 0 is ``palm_center``
          in the STB convention).

        Means are None when every frame is missing.

    Raises:
        ShapeError: shapes differ or are not (N, 21, 3), or ``gt`` holds NaN.
        ConfigError: ``convention`` or ``root`` is unknown or incompatible.
    """
    check_shape(pred, ("N", NUM_JOINTS, 3), "pred")
    check_shape(gt, ("N", NUM_JOINTS, 3), "gt")
    if pred.shape != gt.shape:
        raise ShapeError(f"pred expected the shape of gt {gt.shape}; got {pred.shape}")
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if not np.isfinite(gt).all():
        raise ShapeError("gt expected finite values; got NaN or inf")
    if convention not in CONVENTIONS:
        raise ConfigError(f"convention expected one of {CONVENTIONS}; got {convention!r}")
    if root is None:
        root = "wrist" if convention == "ours" else "palm_center"
    if root not in ROOTS:
        raise ConfigError(f"root expected one of {ROOTS}; got {root!r}")
    if convention == "stb" and root != "palm_center":
        raise ConfigError(
            f"root expected 'palm_center' with convention 'stb' (STB has no wrist); got {root!r}"
        )

    valid = np.isfinite(pred).all(axis=(1, 2))
    pred, gt = pred[valid], gt[valid]
    if convention == "stb":
        pred = palm_center_convention(pred)
        # Index 0 of both now holds a palm center: it is the root.
        rel_pred, rel_gt = root_relative_joints(pred), root_relative_joints(gt)
    else:
        rel_pred, rel_gt = root_relative_joints(pred, root), root_relative_joints(gt, root)

    abs_err = joint_errors_mm(pred, gt)
    rel_err = joint_errors_mm(rel_pred, rel_gt)
    thresholds = np.asarray(thresholds_mm, dtype=np.float64).reshape(-1)
    pck_abs = pck_curve(abs_err, thresholds)
    pck_rel = pck_curve(rel_err, thresholds)
    has = abs_err.size > 0
    names = ("palm_center", *JOINT_NAMES[1:]) if convention == "stb" else JOINT_NAMES
    per_joint = abs_err.mean(axis=0) if has else np.full(NUM_JOINTS, np.nan)
    return {
        "convention": convention,
        "root": root,
        "total": int(valid.size),
        "count": int(valid.sum()),
        "missing": int((~valid).sum()),
        "mean_joint_error_mm": _finite_mean(abs_err),
        "median_joint_error_mm": float(np.median(abs_err)) if has else None,
        "root_relative_error_mm": _finite_mean(rel_err),
        "auc_20_50": auc_from_pck(thresholds, pck_abs) if has else None,
        "auc_20_50_root_relative": auc_from_pck(thresholds, pck_rel) if has else None,
        "pck": [[float(t), float(f)] for t, f in zip(thresholds, pck_abs)] if has else [],
        "pck_root_relative": (
            [[float(t), float(f)] for t, f in zip(thresholds, pck_rel)] if has else []
        ),
        "per_joint_mm": {
            name: (float(v) if np.isfinite(v) else None) for name, v in zip(names, per_joint)
        },
    }
