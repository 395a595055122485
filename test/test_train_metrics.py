"""3D joint metrics against hand-computed values and a naive loop reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.hand.joints import JOINT_NAMES, STB_TO_OURS, palm_center, stb_from_ours
from stereo_hand_mesh.train.metrics import (
    PCK_THRESHOLDS_MM,
    auc_from_pck,
    joint_errors_mm,
    joint_metrics,
    palm_center_convention,
    pck_curve,
    root_relative_joints,
)

MIDDLE_MCP = JOINT_NAMES.index("middle_mcp")


def _gt(n: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 21, 3)) * 0.04 + [0.05, -0.02, 0.6]


def _offset(mm: float) -> np.ndarray:
    """A translation of ``mm`` millimetres (metres), not along an axis."""
    return np.array([0.6, 0.0, 0.8]) * mm / 1000.0


def test_thresholds_are_20_to_50_every_mm() -> None:
    np.testing.assert_array_equal(PCK_THRESHOLDS_MM, np.arange(20, 51))
    assert PCK_THRESHOLDS_MM[0] == 20 and PCK_THRESHOLDS_MM[-1] == 50


def test_constant_offset() -> None:
    gt = _gt()
    m = joint_metrics(gt + _offset(30.5), gt)
    assert m["mean_joint_error_mm"] == pytest.approx(30.5)
    assert m["median_joint_error_mm"] == pytest.approx(30.5)
    assert m["root_relative_error_mm"] == pytest.approx(0.0, abs=1e-9)
    pck = dict((int(t), f) for t, f in m["pck"])
    assert all(pck[t] == 0.0 for t in range(20, 31))
    assert all(pck[t] == 1.0 for t in range(31, 51))
    # Trapezoids: 0 up to 30, a ramp of area 0.5 from 30 to 31, then 19 of height 1.
    assert m["auc_20_50"] == pytest.approx(19.5 / 30.0)
    assert m["auc_20_50_root_relative"] == pytest.approx(1.0)
    assert m["count"] == 6 and m["missing"] == 0 and m["total"] == 6
    assert all(v == pytest.approx(30.5) for v in m["per_joint_mm"].values())
    assert list(m["per_joint_mm"]) == list(JOINT_NAMES)


def test_exact_30mm_mean() -> None:
    gt = _gt()
    assert joint_metrics(gt + _offset(30.0), gt)["mean_joint_error_mm"] == pytest.approx(30.0)


def test_two_level_errors_auc() -> None:
    gt = _gt(4)
    pred = gt.copy()
    pred[:2] += _offset(24.5)
    pred[2:] += _offset(44.5)
    m = joint_metrics(pred, gt)
    assert m["mean_joint_error_mm"] == pytest.approx(34.5)
    fractions = [f for _, f in m["pck"]]
    assert fractions == [0.0] * 5 + [0.5] * 20 + [1.0] * 6  # 20-24, 25-44, 45-50
    # 0.25 (24->25) + 19 * 0.5 (25->44) + 0.75 (44->45) + 5 (45->50) = 15.5 over 30 mm.
    assert m["auc_20_50"] == pytest.approx(15.5 / 30.0)


def test_against_naive_loops() -> None:
    rng = np.random.default_rng(3)
    gt = _gt(5)
    pred = gt + rng.normal(size=gt.shape) * 0.02
    m = joint_metrics(pred, gt)
    errors = []
    rel = []
    for n in range(5):
        for j in range(21):
            errors.append(
                1000.0 * np.sqrt(sum((pred[n, j, k] - gt[n, j, k]) ** 2 for k in range(3)))
            )
            d = (pred[n, j] - pred[n, 0]) - (gt[n, j] - gt[n, 0])
            rel.append(1000.0 * np.sqrt(float(d @ d)))
    assert m["mean_joint_error_mm"] == pytest.approx(np.mean(errors))
    assert m["root_relative_error_mm"] == pytest.approx(np.mean(rel))
    for t, f in m["pck"]:
        assert f == pytest.approx(sum(e <= t for e in errors) / len(errors))
    area = sum(0.5 * (m["pck"][i][1] + m["pck"][i + 1][1]) for i in range(len(m["pck"]) - 1))
    assert m["auc_20_50"] == pytest.approx(area / 30.0)
    for j, name in enumerate(JOINT_NAMES):
        assert m["per_joint_mm"][name] == pytest.approx(np.mean(errors[j::21]))


def test_translation_only_changes_absolute_error() -> None:
    rng = np.random.default_rng(4)
    gt = _gt()
    pred = gt + rng.normal(size=gt.shape) * 0.005
    base = joint_metrics(pred, gt)
    shifted = joint_metrics(pred + np.array([0.0, 0.0, 0.1]), gt)
    assert shifted["root_relative_error_mm"] == pytest.approx(base["root_relative_error_mm"])
    assert shifted["mean_joint_error_mm"] > base["mean_joint_error_mm"] + 50


def test_nan_frames_are_counted_and_excluded() -> None:
    gt = _gt(4)
    pred = gt + _offset(10.0)
    pred[1] = np.nan
    pred[3, 5, 0] = np.nan  # one bad joint makes the whole frame missing
    m = joint_metrics(pred, gt)
    assert m["missing"] == 2 and m["count"] == 2 and m["total"] == 4
    assert m["mean_joint_error_mm"] == pytest.approx(10.0)
    json.dumps(m, allow_nan=False)

    m = joint_metrics(np.full_like(gt, np.nan), gt)
    assert m["count"] == 0 and m["missing"] == 4
    assert m["mean_joint_error_mm"] is None and m["auc_20_50"] is None and m["pck"] == []
    assert all(v is None for v in m["per_joint_mm"].values())
    json.dumps(m, allow_nan=False)


def test_per_joint_errors() -> None:
    gt = _gt()
    pred = gt.copy()
    pred[:, JOINT_NAMES.index("index_tip")] += _offset(10.0)
    m = joint_metrics(pred, gt)
    assert m["per_joint_mm"]["index_tip"] == pytest.approx(10.0)
    assert m["per_joint_mm"]["wrist"] == pytest.approx(0.0)
    assert m["mean_joint_error_mm"] == pytest.approx(10.0 / 21.0)


def test_result_is_json_serializable() -> None:
    gt = _gt()
    m = joint_metrics(gt + _offset(5.0), gt)
    back = json.loads(json.dumps(m, allow_nan=False))
    for key in ("mean_joint_error_mm", "root_relative_error_mm", "auc_20_50", "pck",
                "per_joint_mm", "count", "missing"):  # fmt: skip
        assert key in back
    assert back["pck"][0] == [20.0, 1.0] and len(back["pck"]) == 31


def test_stb_convention() -> None:
    gt_ours = _gt()
    gt_stb = palm_center_convention(gt_ours)
    # The same skeleton through STB's order gives the same STB-convention array.
    np.testing.assert_allclose(stb_from_ours(gt_ours)[..., STB_TO_OURS, :], gt_stb)
    np.testing.assert_allclose(gt_stb[:, 0], palm_center(gt_ours))

    m = joint_metrics(gt_ours, gt_stb, convention="stb")
    assert m["mean_joint_error_mm"] == pytest.approx(0.0, abs=1e-9)
    assert m["root"] == "palm_center" and "palm_center" in m["per_joint_mm"]
    assert "wrist" not in m["per_joint_mm"]

    # Moving wrist and middle_mcp in opposite directions keeps the palm center.
    pred = gt_ours.copy()
    pred[:, 0] += _offset(8.0)
    pred[:, MIDDLE_MCP] -= _offset(8.0)
    m = joint_metrics(pred, gt_stb, convention="stb")
    assert m["per_joint_mm"]["palm_center"] == pytest.approx(0.0, abs=1e-9)
    assert m["per_joint_mm"]["middle_mcp"] == pytest.approx(8.0)
    assert m["mean_joint_error_mm"] == pytest.approx(8.0 / 21.0)
    # Without the conversion the wrist would have been compared to the palm center.
    assert joint_metrics(pred, gt_stb)["per_joint_mm"]["wrist"] > 8.0


def test_palm_center_root_for_our_convention() -> None:
    gt = _gt()
    pred = gt.copy()
    pred[:, 0] += _offset(8.0)
    pred[:, MIDDLE_MCP] -= _offset(8.0)
    # The palm center does not move, so only wrist and middle_mcp are off (8 mm each).
    m = joint_metrics(pred, gt, root="palm_center")
    assert m["root_relative_error_mm"] == pytest.approx(16.0 / 21.0)
    rel = root_relative_joints(gt, "palm_center")
    np.testing.assert_allclose(palm_center(rel), 0.0, atol=1e-12)


def test_helpers() -> None:
    errors = joint_errors_mm(np.zeros((1, 2, 3)), np.array([[[0.003, 0.004, 0], [0, 0, 0.01]]]))
    np.testing.assert_allclose(errors, [[5.0, 10.0]])
    np.testing.assert_allclose(
        pck_curve(np.array([5.0, 10.0, np.nan]), [4, 5, 9, 10]), [0, 0.5, 0.5, 1]
    )
    assert auc_from_pck([0.0, 1.0, 3.0], [0.0, 1.0, 1.0]) == pytest.approx(2.5 / 3.0)
    assert np.isnan(pck_curve(np.array([np.nan]), [1.0, 2.0])).all()


def test_bad_inputs() -> None:
    gt = _gt()
    with pytest.raises(ShapeError, match=r"pred expected shape \(N, 21, 3\)"):
        joint_metrics(gt[:, :20], gt)
    with pytest.raises(ShapeError, match=r"shape of gt"):
        joint_metrics(np.concatenate([gt, gt]), gt)
    bad = gt.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ShapeError, match="gt expected finite"):
        joint_metrics(gt, bad)
    with pytest.raises(ConfigError, match="convention"):
        joint_metrics(gt, gt, convention="mano")
    with pytest.raises(ConfigError, match="root"):
        joint_metrics(gt, gt, root="thumb")
    with pytest.raises(ConfigError, match="STB has no wrist"):
        joint_metrics(gt, gt, convention="stb", root="wrist")
    with pytest.raises(ShapeError, match="increasing thresholds"):
        auc_from_pck([1.0], [1.0])
