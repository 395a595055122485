"""evaluate_real against a naive loop reference, and ``eval --data`` on a real stereo folder.

The scripted pipeline below has the API of HandMeshPipeline (``reset``, ``process`` returning
an estimate with found / joints / reason / timings_ms); it answers from the frame number
drawn into pixel (0, 0) of each left image, so the expected figures are known exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from realdata_files import frame_joints, write_labels, write_real_folder

from stereo_hand_mesh.cli import main
from stereo_hand_mesh.data import RealStereoFolder
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.hand.joints import JOINT_NAMES
from stereo_hand_mesh.pipeline.estimator import HandEstimate, HandsEstimate
from stereo_hand_mesh.train.metrics import PCK_THRESHOLDS_MM
from stereo_hand_mesh.train.real_eval import evaluate_real, reason_pattern

FRAMES = (0, 1, 2, 3, 4, 5, 8, 9)  # a gap between 5 and 8
INSIDE = (True, True, False, True, True, True, True, True)
UNKNOWN = ((1, 4), (3, 0))  # (row, joint): frame 1's thumb tip, frame 3's wrist
NOT_FOUND = {
    4: "confidence 0.12 < min_confidence 0.30",
    5: "no hand found",
    9: "confidence 0.05 < min_confidence 0.30",
}


@dataclass(frozen=True)
class Estimate:
    found: bool
    reason: str
    joints: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


class ScriptedPipeline:
    """Answers each frame with the joints (or the not-found reason) it was given; logs calls."""

    def __init__(self, answers: dict[int, np.ndarray | str]) -> None:
        self.answers = answers
        self.calls: list[tuple] = []

    def reset(self) -> None:
        self.calls.append(("reset",))

    def process(
        self, left: np.ndarray, right: np.ndarray, rig: object, stamp_s: float | None = None
    ) -> Estimate:
        frame = int(left[0, 0, 0])
        self.calls.append(("process", frame, stamp_s))
        answer = self.answers.get(frame, "no hand found")
        if isinstance(answer, str):
            return Estimate(False, answer, timings_ms={"locate": 1.0})
        return Estimate(True, "ok", answer, {"locate": 1.0, "inference": 2.0 + frame})


def _predictions() -> dict[int, np.ndarray | str]:
    rng = np.random.default_rng(5)
    answers: dict[int, np.ndarray | str] = dict(NOT_FOUND)
    for frame in FRAMES:
        if frame not in NOT_FOUND:
            answers[frame] = frame_joints(frame) + rng.normal(0.0, 0.02, (21, 3))
    return answers


@pytest.fixture
def folder(tmp_path: Path) -> RealStereoFolder:
    path = write_real_folder(tmp_path / "f", frames=FRAMES, inside=INSIDE, unknown=UNKNOWN)
    return RealStereoFolder.open(path)


def _reference(folder: RealStereoFolder, answers: dict, scored: list[int]) -> dict:
    """The figures by plain loops over frames and joints."""
    per_frame, rel_per_frame, all_errors = [], [], []
    per_joint: dict[str, list[float]] = {name: [] for name in JOINT_NAMES}
    for frame in scored:
        pred = answers[frame]
        if isinstance(pred, str):
            continue
        gt = folder.joints_m(frame)
        errors, rel_errors = [], []
        for j, name in enumerate(JOINT_NAMES):
            if np.isnan(gt[j]).any():
                continue
            e = 1000.0 * float(np.sqrt(np.sum((pred[j] - gt[j]) ** 2)))
            errors.append(e)
            per_joint[name].append(e)
            all_errors.append(e)
            if not np.isnan(gt[0]).any():
                rel = (pred[j] - pred[0]) - (gt[j] - gt[0])
                rel_errors.append(1000.0 * float(np.sqrt(np.sum(rel**2))))
        per_frame.append(sum(errors) / len(errors))
        if rel_errors:
            rel_per_frame.append(sum(rel_errors) / len(rel_errors))
    pck = [sum(e <= t for e in all_errors) / len(all_errors) for t in PCK_THRESHOLDS_MM]
    area = sum(
        0.5 * (pck[i] + pck[i + 1]) * (PCK_THRESHOLDS_MM[i + 1] - PCK_THRESHOLDS_MM[i])
        for i in range(len(pck) - 1)
    )
    return {
        "mean": sum(per_frame) / len(per_frame),
        "median": float(np.median(per_frame)),
        "rel": sum(rel_per_frame) / len(rel_per_frame),
        "rel_frames": len(rel_per_frame),
        "per_joint": {n: (sum(v) / len(v) if v else None) for n, v in per_joint.items()},
        "pck": pck,
        "auc": area / (PCK_THRESHOLDS_MM[-1] - PCK_THRESHOLDS_MM[0]),
        "frames_with_error": len(per_frame),
        "joints_scored": len(all_errors),
    }


def _assert_close(got: float | None, want: float, what: str) -> None:
    assert got is not None, what
    assert abs(got - want) < 1e-9, f"{what}: got {got}, want {want}, diff {abs(got - want)}"


@pytest.mark.parametrize("tracking", [False, True])
def test_metrics_match_naive_loops(folder: RealStereoFolder, tracking: bool) -> None:
    answers = _predictions()
    pipeline = ScriptedPipeline(answers)
    result = evaluate_real(folder, pipeline, tracking=tracking, frame_rate_hz=20.0)
    scored = [f for f, inside in zip(FRAMES, INSIDE) if inside]
    ref = _reference(folder, answers, scored)
    assert result["frames_total"] == len(FRAMES) and result["frames_scored"] == len(scored)
    assert result["found"] == 4 and result["found_rate"] == pytest.approx(4 / 7)
    assert result["not_found_reasons"] == {
        "confidence # < min_confidence #": 2,
        "no hand found": 1,
    }
    _assert_close(result["mean_joint_error_mm"], ref["mean"], "mean")
    _assert_close(result["median_joint_error_mm"], ref["median"], "median")
    _assert_close(result["root_relative_error_mm"], ref["rel"], "root-relative")
    assert result["root_relative_frames"] == ref["rel_frames"] == 3  # frame 3: no wrist
    for name in JOINT_NAMES:
        want = ref["per_joint"][name]
        _assert_close(result["per_joint_mm"][name], want, f"per-joint {name}")
    assert result["frames_with_error"] == ref["frames_with_error"]
    assert result["joints_scored"] == ref["joints_scored"] == 4 * 21 - 2
    np.testing.assert_allclose([f for _, f in result["pck"]], ref["pck"], rtol=0, atol=1e-12)
    _assert_close(result["auc_20_50"], ref["auc"], "AUC")
    assert [r["frame"] for r in result["per_frame"]] == scored
    assert result["stage_ms_median"]["locate"] == 1.0
    assert result["stage_ms_median"]["inference"] == float(np.median([2, 3, 5, 10]))
    lat = result["latency_ms"]
    assert 0 < lat["median"] <= lat["p95"] and lat["mean"] > 0

    processed = [c[1] for c in pipeline.calls if c[0] == "process"]
    stamps = [c[2] for c in pipeline.calls if c[0] == "process"]
    assert stamps == [f / 20.0 for f in processed]
    if tracking:  # every frame in order; a reset at the start and at the gap only
        assert result["mode"] == "tracking" and processed == list(FRAMES)
        resets = [i for i, c in enumerate(pipeline.calls) if c[0] == "reset"]
        after = [pipeline.calls[i + 1][1] for i in resets]
        assert after == [0, 8]
    else:  # the scored frames only, each a cold start
        assert result["mode"] == "static" and processed == scored
        assert pipeline.calls == [c for f in scored for c in (("reset",), ("process", f, f / 20))]
    assert result["frames_played"] == len(processed)
    json.dumps(result)  # serializable


def test_all_labelled_frames_and_limit(folder: RealStereoFolder) -> None:
    answers = _predictions()
    result = evaluate_real(folder, ScriptedPipeline(answers), only_inside=False, tracking=False)
    assert result["frames_scored"] == len(FRAMES) and result["found"] == 5
    ref = _reference(folder, answers, list(FRAMES))
    _assert_close(result["mean_joint_error_mm"], ref["mean"], "mean")
    pipeline = ScriptedPipeline(answers)
    result = evaluate_real(folder, pipeline, limit=2, tracking=True)
    assert result["frames_scored"] == 2 and result["frames_played"] == 2
    assert [c[1] for c in pipeline.calls if c[0] == "process"] == [0, 1]


def test_frame_selection_plays_and_scores_only_those_positions(folder: RealStereoFolder) -> None:
    answers = _predictions()
    # Positions 3: of FRAMES (0, 1, 2, 3, 4, 5, 8, 9) are frames 3, 4, 5, 8, 9; all inside.
    for tracking in (True, False):
        pipeline = ScriptedPipeline(answers)
        result = evaluate_real(folder, pipeline, tracking=tracking, frames=slice(3, None))
        played = [c[1] for c in pipeline.calls if c[0] == "process"]
        assert played == [3, 4, 5, 8, 9], tracking
        assert result["frames"] == "3:" and result["frames_scored"] == 5
        assert [r["frame"] for r in result["per_frame"]] == [3, 4, 5, 8, 9]
        ref = _reference(folder, answers, [3, 4, 5, 8, 9])
        _assert_close(result["mean_joint_error_mm"], ref["mean"], "mean")
        if tracking:  # tracking starts afresh at the selection, and at the gap 5 -> 8
            assert pipeline.calls[0] == ("reset",)
            assert sum(c[0] == "reset" for c in pipeline.calls) == 2
    # The first half: positions 0:3 are frames 0, 1, 2 (2 is not inside: not scored).
    result = evaluate_real(folder, ScriptedPipeline(answers), frames=slice(0, 3))
    assert result["frames_scored"] == 2 and result["frames"] == "0:3"
    with pytest.raises(ConfigError, match="frames expected STOP > START"):
        evaluate_real(folder, ScriptedPipeline(answers), frames=slice(3, 1))


def test_unlabelled_folder_reports_found_rate_and_latency(tmp_path: Path) -> None:
    path = write_real_folder(tmp_path / "u", frames=(0, 1, 2), labels=False)
    answers = {0: frame_joints(0), 1: "no hand found", 2: frame_joints(2)}
    result = evaluate_real(path, ScriptedPipeline(answers), tracking=False)
    assert not result["has_labels"] and result["frames_scored"] == 3
    assert result["found"] == 2 and result["found_rate"] == pytest.approx(2 / 3)
    assert result["mean_joint_error_mm"] is None and result["auc_20_50"] is None
    assert result["latency_ms"]["median"] is not None
    assert all(r["error_mm"] is None for r in result["per_frame"])
    labelled = write_real_folder(tmp_path / "l", frames=(0, 1, 2))
    with_labels = evaluate_real(labelled, ScriptedPipeline(answers), tracking=False)
    assert set(result) == set(with_labels)  # one schema, labels or not


def test_bad_estimates_and_settings(folder: RealStereoFolder) -> None:
    answers = _predictions()
    answers[0] = np.full((21, 3), np.nan)
    with pytest.raises(ShapeError, match="frame 0: a found estimate expected finite joints"):
        evaluate_real(folder, ScriptedPipeline(answers))
    answers[0] = np.zeros((20, 3))
    with pytest.raises(ShapeError, match=r"frame 0 estimate joints expected shape \(21, 3\)"):
        evaluate_real(folder, ScriptedPipeline(answers))
    with pytest.raises(ConfigError, match="frame_rate_hz expected > 0"):
        evaluate_real(folder, ScriptedPipeline(answers), frame_rate_hz=0.0)


def test_reason_pattern() -> None:
    assert reason_pattern("confidence 0.12 < min_confidence 0.30") == (
        "confidence # < min_confidence #"
    )
    assert reason_pattern("implausible mesh: bounding box 0.500 x 0.010 x 0.001 m") == (
        "implausible mesh: bounding box # x # x # m"
    )


def test_import_is_numpy_only() -> None:
    code = (
        "import sys, stereo_hand_mesh.train.real_eval, stereo_hand_mesh.data.realdata; "
        "print([m for m in ('torch', 'rclpy', 'onnxruntime') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_eval_cli_on_a_real_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The product pipeline with the shipped model: keys and counts, not accuracy."""
    path = write_real_folder(
        tmp_path / "f",
        frames=(0, 1, 2, 4),
        inside=(True, True, False, True),
        width=160,
        height=120,
    )
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(path), "--json", str(out), "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "eval:" in summary and "(tracking," in summary and "found" in summary
    result = json.loads(out.read_text())
    for key in ("backend", "model", "mode", "found", "found_rate", "latency_ms", "per_joint_mm"):
        assert key in result
    assert result["mode"] == "tracking" and result["has_labels"]
    assert result["frames_scored"] == 3 and result["frames_played"] == 4
    assert result["found"] + sum(result["not_found_reasons"].values()) == 3
    assert "hand_landmark_" in result["model"] and result["model_kind"] == "keypoints"
    assert len(result["per_frame"]) == 3

    static = tmp_path / "static.json"
    assert main(["eval", "--data", str(path), "--static", "--json", str(static), "--quiet"]) == 0
    result = json.loads(static.read_text())
    assert result["mode"] == "static" and result["frames_played"] == 3

    (path / "right.yaml").unlink()
    assert main(["eval", "--data", str(path), "--quiet"]) == 1
    assert "right.yaml" in capsys.readouterr().err


class TwoHandPipeline:
    """``process_hands`` answers from the frame number: a right hand 5 mm off its label in x,
    a left hand 10 mm off in y except frame 1 (the left hand dropped, with a reason) and
    frame 2 (two right hands: no left hand meshed)."""

    def __init__(self, hands: np.ndarray) -> None:
        self.hands = hands  # (M, 2, 21, 3) by frame

    def reset(self) -> None:
        pass

    def process(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("a pipeline with process_hands is scored side by side")

    def process_hands(
        self, left: np.ndarray, right: np.ndarray, rig: object, stamp_s: float | None = None
    ) -> HandsEstimate:
        frame = int(left[0, 0, 0])
        gt = self.hands[frame]
        right_hand = HandEstimate(
            True, "ok", 0.9, joints=gt[0] + [0.005, 0, 0], hand_id=0, handedness="right"
        )
        if frame == 1:
            dropped = HandEstimate(False, "the views disagree on the hand's side", 0.0)
            return HandsEstimate((right_hand,), (dropped,), "ok", {"fit": 1.0})
        side = "right" if frame == 2 else "left"
        other = HandEstimate(
            True, "ok", 0.8, joints=gt[1] + [0, 0.010, 0], hand_id=1, handedness=side
        )
        return HandsEstimate((right_hand, other), (), "ok", {"fit": 1.0})


def test_several_hands_scored_by_side(tmp_path: Path) -> None:
    path = write_real_folder(tmp_path / "f", frames=(0, 1, 2, 3), labels=False)
    hands = np.stack([np.stack([frame_joints(f), frame_joints(f + 100)]) for f in range(4)])
    write_labels(
        path / "gt.npz", [0, 1, 2, 3], joints_m=hands,
        inside=np.ones((4, 2), dtype=bool), hand_sides=np.array(["right", "left"]),
    )  # fmt: skip
    result = evaluate_real(RealStereoFolder.open(path), TwoHandPipeline(hands))
    assert result["frames_scored"] == 4 and result["hands_scored"] == 8
    assert result["per_side"]["right"] == {
        "scored": 4, "found": 4, "found_rate": 1.0, "mean_joint_error_mm": pytest.approx(5.0)
    }  # fmt: skip
    left = result["per_side"]["left"]
    assert (left["scored"], left["found"]) == (4, 2)
    assert left["mean_joint_error_mm"] == pytest.approx(10.0)
    assert result["found"] == 6 and result["mean_joint_error_mm"] == pytest.approx(
        (4 * 5.0 + 2 * 10.0) / 6
    )
    reasons = {(r["frame"], r["side"]): r["reason"] for r in result["per_frame"]}
    assert "dropped: the views disagree on the hand's side" in reasons[(1, "left")]
    assert reasons[(2, "left")].startswith("no left hand meshed")
    ids = {(r["frame"], r["side"]): r.get("hand_id") for r in result["per_frame"]}
    assert ids[(0, "right")] == 0 and ids[(3, "left")] == 1
