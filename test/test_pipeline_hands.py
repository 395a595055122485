"""Several hands per pair (issue 18): HandMeshPipeline.process_hands on real renders.

A pair with two hands is one rendered pair of a right hand with its own mirror image (a LEFT
hand) pasted in: ``two_hand_pairs``.
"""

from __future__ import annotations

import numpy as np
import pytest
from two_hand_pairs import TwoHands, two_hands

from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
from stereo_hand_mesh.data.synth import SynthSettings, as_stereo_sample, iter_synthetic_pairs
from stereo_hand_mesh.geometry import StereoRig
from stereo_hand_mesh.pipeline.estimator import HandMeshPipeline, HandsEstimate, PipelineSettings

#: Renders (source domain, seed 11) whose hand and its mirror image do not overlap in
#: either view, and whose two hands the shipped lite networks mesh.
TWO_HANDS = (2, 8)
SEED = 11
#: Joint error bounds of a meshed hand, metres (as test_pipeline_keypoints).
MEAN_JOINT_M, MAX_JOINT_M = 0.025, 0.07


def _two_hands(index: int) -> TwoHands:
    li, ri = STB_BUMBLEBEE2.camera_infos()
    (p,) = iter_synthetic_pairs(SynthSettings(domain="source"), 1, seed=SEED, start=index)
    render = as_stereo_sample(p, index, li, ri)
    return two_hands(render, render)


@pytest.fixture(scope="module")
def rig() -> StereoRig:
    return StereoRig.from_camera_info(*STB_BUMBLEBEE2.camera_infos())


@pytest.fixture(scope="module")
def scenes() -> list[TwoHands]:
    return [_two_hands(i) for i in TWO_HANDS]


@pytest.fixture(scope="module")
def nets():
    from stereo_hand_mesh.runtime.keypoint_nets import create_hand_nets

    return create_hand_nets("onnxruntime", "lite", intra_op_threads=1)


def _pipeline(nets, **settings) -> HandMeshPipeline:
    return HandMeshPipeline(nets, PipelineSettings(smoothing=False, **settings))


def _assert_sides_near(result: HandsEstimate, truth: dict[str, np.ndarray], what: str) -> None:
    assert sorted(h.handedness for h in result.hands) == ["left", "right"], (
        f"{what}: {result.summary()}"
    )
    for side, joints in truth.items():
        est = result.side(side)
        err = np.linalg.norm(est.joints - joints, axis=1)
        assert err.mean() < MEAN_JOINT_M and err.max() < MAX_JOINT_M, (
            f"{what}, {side} hand: mean {1e3 * err.mean():.1f} mm, worst {1e3 * err.max():.1f} mm"
        )


def test_two_hands_meshed_each_with_its_side(nets, scenes, rig: StereoRig) -> None:
    pipeline = _pipeline(nets, tracking=False)
    for index, scene in zip(TWO_HANDS, scenes, strict=True):
        result = pipeline.process_hands(scene.sample.left, scene.sample.right, rig)
        _assert_sides_near(result, scene.truth, f"render {index}")
        assert len({h.hand_id for h in result.hands}) == 2
        assert result.primary is max(result.hands, key=lambda h: h.confidence)
        # The faces of each side wind outward for it (a left hand is mirrored).
        np.testing.assert_array_equal(
            pipeline.faces_for("left"), pipeline.faces_for("right")[:, ::-1]
        )


def test_tracked_hands_keep_their_ids_and_sides(nets, scenes, rig: StereoRig) -> None:
    pipeline = _pipeline(nets)
    scene = scenes[0]
    first = pipeline.process_hands(scene.sample.left, scene.sample.right, rig, 0.0)
    ids = {h.handedness: h.hand_id for h in first.hands}
    assert set(ids) == {"left", "right"}, first.summary()
    for k in range(1, 8):
        result = pipeline.process_hands(scene.sample.left, scene.sample.right, rig, k / 30)
        assert {h.handedness: h.hand_id for h in result.hands} == ids, result.summary()
        assert "detect" not in result.timings_ms  # both tracked: no palm search
    # A pair without the hands forgets them; the next pair gives new identities.
    blank = np.full_like(scene.sample.left, 90)
    assert not pipeline.process_hands(blank, blank, rig, 1.0).found
    again = pipeline.process_hands(scene.sample.left, scene.sample.right, rig, 1.1)
    assert min(h.hand_id for h in again.hands) > max(ids.values()), again.summary()


def test_max_hands_and_handedness_restrict(nets, scenes, rig: StereoRig) -> None:
    scene = scenes[0]
    one = _pipeline(nets, max_hands=1, tracking=False).process_hands(
        scene.sample.left, scene.sample.right, rig
    )
    assert len(one.hands) == 1
    assert any("more than max_hands 1" in h.reason for h in one.dropped), one.summary()
    for side, other in (("right", "left"), ("left", "right")):
        result = _pipeline(nets, handedness=side, tracking=False).process_hands(
            scene.sample.left, scene.sample.right, rig
        )
        assert [h.handedness for h in result.hands] == [side], result.summary()
        assert any(f"a {other} hand in both views" in h.reason for h in result.dropped), (
            result.summary()
        )


class _DisagreeingNets:
    """The shipped networks, except that each right-view crop's handedness is turned round
    (the right view then says the other side)."""

    def __init__(self, nets) -> None:
        self.detector, self.name, self.reason = nets.detector, nets.name, nets.reason
        self.landmarks = _FlippedHandedness(nets.landmarks)


class _FlippedHandedness:
    def __init__(self, net) -> None:
        self.net, self.input_size, self.path = net, net.input_size, net.path

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = dict(self.net.run(images))
        handed = np.array(out["handedness"], dtype=np.float32).reshape(-1)
        handed[1::2] = 1.0 - handed[1::2]
        out["handedness"] = handed.reshape(np.shape(out["handedness"]))
        return out


def test_views_that_disagree_on_the_side_drop_the_hand(nets, scenes, rig: StereoRig) -> None:
    pipeline = HandMeshPipeline(_DisagreeingNets(nets), PipelineSettings(tracking=False))
    result = pipeline.process_hands(scenes[0].sample.left, scenes[0].sample.right, rig)
    assert not result.found
    assert len(result.dropped) == 2, result.summary()
    assert all("the views disagree on the hand's side" in h.reason for h in result.dropped)
    assert result.primary.reason == result.dropped[0].reason or not result.primary.found


def test_hand_in_one_view_only(nets, scenes, rig: StereoRig) -> None:
    one = scenes[0].left_in_one_view  # the left hand is missing from the right view
    left, right = one.left, one.right
    result = _pipeline(nets, tracking=False).process_hands(left, right, rig)
    assert [h.handedness for h in result.hands] == ["right"], result.summary()
    est = result.side("right")
    assert np.linalg.norm(est.joints - scenes[0].truth["right"], axis=1).mean() < MEAN_JOINT_M
    assert result.dropped and all(h.reason for h in result.dropped), result.summary()


def test_one_hand_searched_every_pair_is_not_duplicated(nets, scenes, rig: StereoRig) -> None:
    (p,) = iter_synthetic_pairs(SynthSettings(domain="source"), 1, seed=SEED, start=TWO_HANDS[0])
    pipeline = _pipeline(nets, new_hand_search_period=1)
    ids = set()
    for k in range(6):
        result = pipeline.process_hands(p.left, p.right, rig, k / 30)
        assert len(result.hands) == 1, result.summary()
        assert "detect" in result.timings_ms  # the search ran, and found only this hand
        ids.add(result.hands[0].hand_id)
    assert len(ids) == 1


def test_infer_writes_every_hand(scenes, rig: StereoRig, tmp_path) -> None:
    import json

    from stereo_hand_mesh.cli import main as cli_main
    from stereo_hand_mesh.data import write_camera_info_yaml, write_image_png

    scene = scenes[0]
    left_info, right_info = STB_BUMBLEBEE2.camera_infos()
    files = {}
    for name, image in (("left", scene.sample.left), ("right", scene.sample.right)):
        files[name] = tmp_path / f"{name}.png"
        write_image_png(files[name], image)
    write_camera_info_yaml(tmp_path / "left.yaml", left_info)
    write_camera_info_yaml(tmp_path / "right.yaml", right_info)
    out = tmp_path / "infer.json"
    args = [
        "infer", "--left", str(files["left"]), "--right", str(files["right"]),
        "--left-info", str(tmp_path / "left.yaml"), "--right-info", str(tmp_path / "right.yaml"),
        "--backend", "onnxruntime", "--keypoint-variant", "lite", "--json", str(out),
        "--overlay", str(tmp_path / "overlay.png"),
    ]  # fmt: skip
    assert cli_main(args) == 0
    result = json.loads(out.read_text())
    assert sorted(h["handedness"] for h in result["hands"]) == ["left", "right"]
    for hand in result["hands"]:
        truth = scene.truth[hand["handedness"]]
        err = np.linalg.norm(np.array(hand["joints"]) - truth, axis=1).mean()
        assert err < MEAN_JOINT_M, (hand["handedness"], err)
    best = max(result["hands"], key=lambda h: h["confidence"])
    assert result["joints"] == best["joints"] and result["hand_side"] == best["handedness"]
    assert len(result["hands"][0]["vertices"]) == len(result["vertices"])
    # One hand only: --max-hands 1.
    assert cli_main([*args, "--max-hands", "1"]) == 0
    result = json.loads(out.read_text())
    assert len(result["hands"]) == 1 and "more than max_hands 1" in result["dropped"][0]["reason"]


def test_synth_two_hand_motion_folder_scored_by_eval(tmp_path, capsys) -> None:
    """``synth --motion --hands 2 --real-folder`` writes the simulator's two hands in the real
    stereo folder format; ``eval --data`` scores each hand against its side's label."""
    import json

    from stereo_hand_mesh.cli import main as cli_main
    from stereo_hand_mesh.data import RealStereoFolder

    out = tmp_path / "two"
    synth = ["synth", "--domain", "source", "--motion", "--count", "3", "--rate", "15",
             "--quiet", "--out"]  # fmt: skip
    assert cli_main([*synth, str(out), "--hands", "2", "--real-folder"]) == 0
    folder = RealStereoFolder.open(out)
    assert folder.hand_sides == ("right", "left") and folder.frames == (0, 1, 2)
    assert np.isfinite(folder.hands_m(2)).all()
    report = tmp_path / "eval.json"
    args = ["eval", "--data", str(out), "--json", str(report), "--backend", "onnxruntime",
            "--fps", "15", "--quiet"]  # fmt: skip
    assert cli_main(args) == 0
    result = json.loads(report.read_text())
    assert result["hands_scored"] == 6
    for side in ("right", "left"):
        figures = result["per_side"][side]
        assert figures["found"] == 3, (side, result["not_found_reasons"])
        assert figures["mean_joint_error_mm"] < 1e3 * MEAN_JOINT_M
    for bad, message in (
        (["--hands", "2"], "expected --motion"),
        (["--motion", "--real-folder", "--bag"], "expected one of --bag and --real-folder"),
    ):
        assert cli_main([*synth[:3], *synth[4:], str(tmp_path / "x"), *bad]) == 1
        assert message in capsys.readouterr().err
        assert not (tmp_path / "x").exists()
