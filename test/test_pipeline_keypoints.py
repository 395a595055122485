"""Tests of the real-trained keypoint pipeline (HandMeshPipeline) with the shipped lite
networks on ONNX Runtime's CPU provider: rendered pairs with a hand, tracking over a short
motion, the bad inputs a stream brings, input checks, an external ROI, and the stereo
pairing of palms.

The renders are not very realistic, so the real-trained networks find some hands and miss
others: the pairs used as positive cases are ones they find (source domain, seed 5, pairs
0, 1, 3, 4, 6, 7; pair 2, a fist, is missed by the palm detector). Ground truth comes from
the renderer.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import skimage.data

from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2, rectified_stereo_camera_infos
from stereo_hand_mesh.data.synth import (
    HAND_TO_CAMERA,
    HandScene,
    RenderedPair,
    SceneAppearance,
    SynthSettings,
    iter_synthetic_pairs,
    render_background_pair,
    render_scene,
)
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry import StereoRig
from stereo_hand_mesh.pipeline.estimator import (
    HandEstimate,
    HandMeshPipeline,
    PipelineSettings,
    StereoCrops,
    pair_all_palms,
    pair_palms,
)
from stereo_hand_mesh.pipeline.palm import PalmDetection

#: Rendered pairs (source domain, seed 5) whose hand the shipped networks find.
FOUND = (0, 1, 3, 4, 6, 7)
#: A found pair used as "the next good pair" after each bad input.
GOOD = 3
#: Joint error bounds for a found hand, metres: the mean over the 21 joints and the worst
#: joint (the network's keypoints are 5-9 px off the renderer's joints on these pairs;
#: measured on the realistic renders of issue 17: means 6-17 mm, worst joint 62 mm, the
#: index tip of pair 1; on the plain renders before: worst 45 mm).
MEAN_JOINT_M, MAX_JOINT_M = 0.025, 0.07


@pytest.fixture(scope="module")
def pairs() -> list[RenderedPair]:
    return list(iter_synthetic_pairs(SynthSettings(domain="source"), 8, seed=5))


@pytest.fixture(scope="module")
def rig() -> StereoRig:
    return StereoRig.from_camera_info(*STB_BUMBLEBEE2.camera_infos())


@pytest.fixture(scope="module")
def nets():
    from stereo_hand_mesh.runtime.keypoint_nets import create_hand_nets

    return create_hand_nets("onnxruntime", "lite", intra_op_threads=1)


def _pipeline(nets, **settings) -> HandMeshPipeline:
    return HandMeshPipeline(nets, PipelineSettings(smoothing=False, **settings))


def _mean_error_m(joints: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(joints - truth, axis=1).mean())


def _assert_near(estimate: HandEstimate, truth: np.ndarray, what: str) -> None:
    err = np.linalg.norm(estimate.joints - truth, axis=1)
    worst = int(err.argmax())
    assert err.mean() < MEAN_JOINT_M and err.max() < MAX_JOINT_M, (
        f"{what}: mean joint error {1e3 * err.mean():.1f} mm, worst {1e3 * err.max():.1f} mm "
        f"at joint {worst}"
    )


# --- hands that are found -----------------------------------------------------------------


@pytest.mark.parametrize("index", FOUND)
def test_found_hands_are_near_the_ground_truth(nets, pairs, rig, index: int) -> None:
    pair = pairs[index]
    est = _pipeline(nets).process(pair.left, pair.right, rig)
    assert est.found and est.reason == "ok", est.reason
    truth = pair.annotation["joints"].astype(np.float64)
    _assert_near(est, truth, f"pair {index}")
    assert est.joints.shape == (21, 3) and (est.joints[:, 2] > 0).all()

    # The keypoints: both views, inside the images, near the rendered joints.
    h, w = pair.left.shape[:2]
    kp = est.keypoints
    assert kp.shape == (2, 21, 2) and np.isfinite(kp).all()
    assert ((kp >= -0.5) & (kp <= np.array([w - 0.5, h - 0.5]))).all()
    for view, key in enumerate(("uv_left", "uv_right")):
        err_px = np.linalg.norm(kp[view] - pair.annotation[key], axis=1)
        assert np.median(err_px) < 12.0, f"{key}: median keypoint error {np.median(err_px):.1f}"
    # The triangulated joints are in the left optical frame: they project onto the left
    # keypoints, with the right keypoints at their disparity.
    tri = est.triangulated_joints
    proj = rig.project_left(tri)
    assert np.allclose(proj, kp[0], atol=1e-6), np.abs(proj - kp[0]).max()
    assert np.allclose(rig.project_right(tri)[:, 0], kp[1, :, 0], atol=1e-6)

    # The mesh.
    v = est.vertices
    assert v.ndim == 2 and v.shape[1] == 3 and len(v) > 100 and np.isfinite(v).all()
    assert est.uv_left.shape == (len(v), 2)
    assert np.allclose(est.uv_left, rig.project_left(v), atol=1e-9)
    r = est.joint_rotations
    assert r.shape == (21, 3, 3)
    gram = np.einsum("jki,jkl->jil", r, r) - np.eye(3)
    assert np.abs(gram).max() < 1e-6, f"R^T R - I: max {np.abs(gram).max():.2g}"
    det = np.linalg.det(r)
    assert np.abs(det - 1.0).max() < 1e-6, f"det R: {det.min():.6f}..{det.max():.6f}"

    # Scores and bookkeeping.
    for name, value in (
        ("presence", est.presence),
        ("handedness_right", est.handedness_right),
        ("joint_confidence", est.joint_confidence),
        ("vertex_confidence", est.vertex_confidence),
    ):
        assert ((value >= 0.0) & (value <= 1.0)).all(), (name, value)
    assert est.presence.shape == (2,) and est.joint_confidence.shape == (21,)
    assert est.vertex_confidence.shape == (len(v),)
    assert 0.3 <= est.confidence <= 1.0  # the default min_confidence
    assert isinstance(est.boxes, StereoCrops) and est.boxes.left.out_size == 224
    assert {"detect", "keypoints", "fit"} <= set(est.timings_ms)


# --- tracking -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def motion_frames():
    """Three frames 1/30 s apart of a hand motion the networks find (seed 2), and a frame of
    the same scene with no hand."""
    import torch

    from stereo_hand_mesh.data.motion import HandMotion, HandMotionSettings, render_motion_frame
    from stereo_hand_mesh.hand import template_hand

    hand = template_hand()
    faces = torch.from_numpy(hand.faces.astype(np.int64))
    motion = HandMotion(hand, SynthSettings(domain="source"), HandMotionSettings(), seed=2)
    frames = [render_motion_frame(motion, k, k / 30.0, faces) for k in range(3)]
    empty = render_motion_frame(motion, 3, 0.1, faces, hand_visible=False)
    return frames, empty


def test_tracking_skips_the_detector_until_reset(nets, rig, motion_frames) -> None:
    frames, _ = motion_frames
    pipe = _pipeline(nets)
    first = pipe.process(frames[0].left, frames[0].right, rig, stamp_s=0.0)
    assert first.found and "detect" in first.timings_ms, first.reason
    for frame in frames[1:]:
        tracked = pipe.process(frame.left, frame.right, rig, stamp_s=frame.time_s)
        assert tracked.found, tracked.reason
        assert "detect" not in tracked.timings_ms, tracked.timings_ms
        _assert_near(tracked, frame.joints, f"tracked frame {frame.index}")
    pipe.reset()
    again = pipe.process(frames[1].left, frames[1].right, rig, stamp_s=frames[1].time_s)
    assert again.found and "detect" in again.timings_ms, again.timings_ms
    # Without tracking every pair is a cold start.
    cold = _pipeline(nets, tracking=False)
    for frame in frames[:2]:
        assert "detect" in cold.process(frame.left, frame.right, rig).timings_ms


def test_a_lost_hand_ends_tracking(nets, rig, motion_frames) -> None:
    frames, empty = motion_frames
    pipe = _pipeline(nets)
    assert pipe.process(frames[0].left, frames[0].right, rig).found
    gone = pipe.process(empty.left, empty.right, rig)
    assert not gone.found and gone.vertices is None
    assert "presence" in gone.reason or "no hand" in gone.reason, gone.reason
    back = pipe.process(frames[1].left, frames[1].right, rig)
    assert back.found and "detect" in back.timings_ms, (back.reason, back.timings_ms)


# --- bad inputs: no mesh, or a correct one, and the stream goes on ------------------------

#: Where the astronaut's head lies on the background texture: rows, columns (pixels).
FACE_ROWS, FACE_COLS = (60, 310), (110, 360)


def _face_scene(with_hand: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A plane at 1.5 m showing a large face (the astronaut's head, larger in the image than
    a hand), STB's rig, source-domain light; with a right hand at 0.75 m or without one.
    Returns (left, right, joints or None)."""
    import torch

    from stereo_hand_mesh.data.synth_style import SOURCE_STYLE, sample_skin_albedo
    from stereo_hand_mesh.hand import template_hand
    from stereo_hand_mesh.hand.poses import gesture_pose
    from stereo_hand_mesh.hand.shape import sample_shape_vectors

    hand = template_hand()
    settings = SynthSettings(domain="source")
    spec = settings.rig
    rng = np.random.default_rng(0)
    photo = (skimage.data.astronaut().astype(np.float32) / 255.0) ** 2.2
    texture = np.full((spec.height, spec.width + spec.width // 2, 3), 0.35, np.float32)
    (r0, r1), (c0, c1) = FACE_ROWS, FACE_COLS
    texture[r0:r1, c0:c1] = cv2.resize(photo[10:330, 100:420], (c1 - c0, r1 - r0))
    appearance = SceneAppearance(
        sample_skin_albedo(SOURCE_STYLE, rng, hand.template_vertices),
        np.array([0.0, 0.0, -1.0]),
        0.6,
        0.4,
        texture,
        1.5,
        np.ones(3, np.float32),
    )
    if not with_hand:
        left, right = render_background_pair(settings, appearance, rng)
        return left, right, None
    z, (u, v) = 0.75, (515.0, 250.0)  # right of the face
    centre = np.array([(u - spec.cx) * z / spec.fx, (v - spec.cy) * z / spec.fy, z])
    scene = HandScene(
        gesture_pose("spread", rng, jitter=0.0),
        sample_shape_vectors(rng, 1)[0],
        HAND_TO_CAMERA.copy(),
        centre,
        appearance,
        "spread",
    )
    pair = render_scene(hand, settings, scene, torch.from_numpy(hand.faces.astype(np.int64)), rng)
    return pair.left, pair.right, pair.annotation["joints"].astype(np.float64)


def _shifted(pair: RenderedPair, dx: int, dy: int, fx: float, fy: float):
    """Both views moved by (dx, dy) pixels (black where nothing comes in), and the joints
    that such a pair shows: the same depths (the disparity is unchanged), x and y moved by
    dx z / fx and dy z / fy."""

    def move(image: np.ndarray) -> np.ndarray:
        out = np.zeros_like(image)
        h, w = image.shape[:2]
        src = image[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
        out[max(dy, 0) : h - max(-dy, 0), max(dx, 0) : w - max(-dx, 0)] = src
        return out

    joints = pair.annotation["joints"].astype(np.float64).copy()
    joints[:, 0] += dx * joints[:, 2] / fx
    joints[:, 1] += dy * joints[:, 2] / fy
    return move(pair.left), move(pair.right), joints


def _hand_centre(pair: RenderedPair) -> np.ndarray:
    uv = pair.annotation["vertices_uv_left"]
    return 0.5 * (uv.min(0) + uv.max(0))


def _bad_input(case: str, pairs: list[RenderedPair], rig: StereoRig):
    """(left, right, joints of the hands a correct mesh may show)."""
    h, w = pairs[0].left.shape[:2]
    if case == "grey":
        grey = np.full((h, w, 3), 128, np.uint8)
        return grey, grey.copy(), []
    if case == "noise":
        rng = np.random.default_rng(7)
        return (*rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8), [])
    if case == "face-no-hand":
        left, right, _ = _face_scene(with_hand=False)
        return left, right, []
    if case in ("cut-left-edge", "cut-bottom-edge"):  # the hand's centre on the edge
        pair = pairs[3] if case == "cut-left-edge" else pairs[7]
        c = np.round(_hand_centre(pair)).astype(int)
        # Bottom: the centre 15% of the hand's height above the edge (the renders show a
        # forearm: with the centre on the edge only the fingers are left, and no palm).
        uv = pair.annotation["vertices_uv_left"]
        above = round(0.15 * (uv[:, 1].max() - uv[:, 1].min()))
        dx, dy = (-c[0], 0) if case == "cut-left-edge" else (0, h - c[1] - above)
        left, right, joints = _shifted(pair, dx, dy, rig.left.fx, rig.left.fy)
        return left, right, [joints]
    if case.startswith("two-hands"):  # the second pair's hand pasted into both views
        i, j = (0, 3) if case == "two-hands-0-3" else (1, 6)
        a, b = pairs[i], pairs[j]
        assert not (a.mask_left & b.mask_left).any() and not (a.mask_right & b.mask_right).any()
        left = np.where(b.mask_left[..., None], b.left, a.left)
        right = np.where(b.mask_right[..., None], b.right, a.right)
        return left, right, [p.annotation["joints"].astype(np.float64) for p in (a, b)]
    if case.startswith("right-from"):  # the right view of another pair: no correct mesh
        i, j = (3, 0) if case == "right-from-another-pair-3-0" else (7, 1)
        return pairs[i].left, pairs[j].right, []
    raise AssertionError(case)


BAD_CASES = [
    "grey",
    "noise",
    "face-no-hand",
    "cut-left-edge",
    "cut-bottom-edge",
    "two-hands-0-3",
    "two-hands-1-6",
    "right-from-another-pair-3-0",
    "right-from-another-pair-7-1",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_inputs_give_no_mesh_or_a_correct_one(nets, pairs, rig, case: str) -> None:
    left, right, truths = _bad_input(case, pairs, rig)
    pipe = _pipeline(nets)
    est = pipe.process(left, right, rig)
    if est.found:
        assert truths, f"{case}: a mesh where none can be right (confidence {est.confidence})"
        errors = [_mean_error_m(est.joints, t) for t in truths]
        nearest = truths[int(np.argmin(errors))]
        _assert_near(est, nearest, case)
        assert np.isfinite(est.vertices).all()
    else:
        assert est.reason and est.reason != "ok" and len(est.reason) > 15, est.reason
        assert est.vertices is None and est.joints is None and est.joint_rotations is None
    # The stream goes on: the next good pair is found.
    good = pairs[GOOD]
    after = pipe.process(good.left, good.right, rig)
    assert after.found, f"after {case}: {after.reason}"
    _assert_near(after, good.annotation["joints"].astype(np.float64), f"pair {GOOD} after {case}")


def test_the_cut_bottom_edge_hand_is_measured(nets, pairs, rig) -> None:
    # Precondition of the "correct mesh" branch above: this half-cut hand is still found,
    # at the shifted position (the other bad inputs are refused).
    left, right, (joints,) = _bad_input("cut-bottom-edge", pairs, rig)
    est = _pipeline(nets).process(left, right, rig)
    assert est.found, est.reason
    _assert_near(est, joints, "cut-bottom-edge")


@pytest.mark.parametrize("case", ["two-hands-0-3", "two-hands-1-6"])
def test_two_hands_give_one_hand_in_both_views(nets, pairs, rig, case: str) -> None:
    # Whichever hand is measured, both views' keypoints lie on that same hand.
    left, right, _ = _bad_input(case, pairs, rig)
    i, j = (0, 3) if case == "two-hands-0-3" else (1, 6)
    est = _pipeline(nets).process(left, right, rig)
    assert est.found, est.reason
    errs = {
        k: [np.median(np.linalg.norm(est.keypoints[v] - pairs[k].annotation[key], axis=1))
            for v, key in enumerate(("uv_left", "uv_right"))]
        for k in (i, j)
    }  # fmt: skip
    chosen = min(errs, key=lambda k: errs[k][0])
    assert max(errs[chosen]) < 12.0, errs


def test_a_face_beside_the_hand_is_not_taken(nets, rig) -> None:
    left, right, joints = _face_scene(with_hand=True)
    est = _pipeline(nets).process(left, right, rig)
    assert est.found, est.reason
    _assert_near(est, joints, "face and hand")
    (r0, r1), (c0, c1) = FACE_ROWS, FACE_COLS
    u, v = est.keypoints[0].mean(0)
    assert not (c0 <= u <= c1 and r0 <= v <= r1), (u, v)


# --- input checks -------------------------------------------------------------------------


def test_images_that_do_not_fit_are_refused(nets, pairs, rig) -> None:
    pair = pairs[GOOD]
    pipe = _pipeline(nets)
    small = np.ascontiguousarray(pair.left[::2, ::2])
    cases = [
        ((small, pair.right), r"left image expected 640x480.*got 320x240"),
        ((pair.left, small), r"right image expected 640x480.*got 320x240"),
        ((pair.left[..., 0], pair.right), r"left image expected shape \(H, W, 3\) RGB"),
        ((pair.left, np.dstack([pair.right, pair.right[..., :1]])), "right image expected"),
        ((pair.left.tolist(), pair.right), "left image expected"),
    ]
    for images, message in cases:
        with pytest.raises(ShapeError, match=message):
            pipe.process(*images, rig)
    # Both images alike but another camera's size.
    other = StereoRig.from_camera_info(
        *rectified_stereo_camera_infos(764, 588, 605.0, 605.0, 382.0, 294.0, 0.1)
    )
    with pytest.raises(ShapeError, match="left image expected 764x588"):
        pipe.process(pair.left, pair.right, other)
    assert pipe.process(pair.left, pair.right, rig).found  # nothing was left half-done


def test_an_roi_replaces_the_left_detection(nets, pairs, rig) -> None:
    pair = pairs[GOOD]
    truth = pair.annotation["joints"].astype(np.float64)
    uv = pair.annotation["vertices_uv_left"]
    side = 1.3 * float((uv.max(0) - uv.min(0)).max())
    x0, y0 = _hand_centre(pair) - side / 2
    pipe = _pipeline(nets)
    around = pipe.process(pair.left, pair.right, rig, roi=(x0, y0, side))
    assert around.found, around.reason
    _assert_near(around, truth, "ROI around the hand")
    # An ROI is a cold start, tracking or not.
    again = pipe.process(pair.left, pair.right, rig, roi=(x0, y0, side))
    assert "detect" in again.timings_ms
    # An ROI on an empty part of the image: the detector's palm elsewhere is not used.
    empty = _pipeline(nets).process(pair.left, pair.right, rig, roi=(10.0, 330.0, 140.0))
    assert not empty.found and empty.vertices is None, empty.reason
    assert _pipeline(nets).process(pair.left, pair.right, rig).found  # without it: found
    for bad in ((x0, y0, 0.0), (x0, np.nan, side), (x0, y0, -side)):
        with pytest.raises(ConfigError, match="roi expected"):
            pipe.process(pair.left, pair.right, rig, roi=bad)


# --- pairing the two views' palms ---------------------------------------------------------


@pytest.fixture(scope="module")
def tabletop_rig() -> StereoRig:
    """A rig whose right principal point is 334 px right of the left one (a tabletop rig
    that looks down at a converging angle, rectified): cx_l 260, cx_r 594."""
    left, right = rectified_stereo_camera_infos(764, 588, 605.0, 605.0, 260.0, 155.0, 0.486)
    k, p = right.K.copy(), right.P.copy()
    k[0, 2] = p[0, 2] = 594.0
    return StereoRig.from_camera_info(left, replace(right, K=k, P=p))


def _palm(u: float, v: float, score: float, height: float = 60.0) -> PalmDetection:
    return PalmDetection(score, np.array([u, v, 50.0, height]), np.tile([u, v], (7, 1)))


def _naive_pair(left, right, rig, tolerance):
    """Every (left, right) pair on the same rows (within ``tolerance`` left-palm heights)
    at a positive disparity once each view's principal point is taken off; the best
    product of scores wins (the first such pair on ties)."""
    best, best_score = None, 0.0
    for pl in left:
        for pr in right:
            rows_ok = abs(pl.box[1] - pr.box[1]) <= tolerance * pl.box[3]
            disparity = (pl.box[0] - rig.left.cx) - (pr.box[0] - rig.right.cx)
            if rows_ok and disparity > 0 and pl.score * pr.score > best_score:
                best, best_score = (pl, pr), pl.score * pr.score
    return best


def test_pair_palms_rows_and_disparity_rules(tabletop_rig: StereoRig) -> None:
    rig = tabletop_rig
    left = _palm(300.0, 200.0, 0.9)  # 40 px right of the left principal point
    # A right palm at u 600 lies 6 px right of the right principal point: disparity 34 px,
    # in front, although its raw column is larger than the left one's.
    assert pair_palms([left], [_palm(600.0, 200.0, 0.8)], rig, 0.5) is not None
    assert pair_palms([left], [_palm(634.0, 200.0, 0.8)], rig, 0.5) is None  # disparity 0
    assert pair_palms([left], [_palm(640.0, 200.0, 0.8)], rig, 0.5) is None  # behind
    # Rows: within half the left palm's height (60 px) of the left palm's centre.
    assert pair_palms([left], [_palm(600.0, 230.0, 0.8)], rig, 0.5) is not None
    assert pair_palms([left], [_palm(600.0, 170.0, 0.8)], rig, 0.5) is not None
    assert pair_palms([left], [_palm(600.0, 230.5, 0.8)], rig, 0.5) is None
    assert pair_palms([left], [_palm(600.0, 230.5, 0.8)], rig, 1.0) is not None
    assert pair_palms([], [_palm(600.0, 200.0, 0.8)], rig, 0.5) is None
    assert pair_palms([left], [], rig, 0.5) is None


def test_pair_palms_ranks_pairs_by_the_product_of_scores(tabletop_rig: StereoRig) -> None:
    rig = tabletop_rig
    top, low = _palm(300.0, 100.0, 0.9), _palm(350.0, 400.0, 0.8)
    weak_twin, strong_twin = _palm(580.0, 100.0, 0.5), _palm(620.0, 400.0, 0.95)
    pair = pair_palms([top, low], [weak_twin, strong_twin], rig, 0.5)
    assert pair is not None and pair[0] is low and pair[1] is strong_twin  # 0.76 > 0.45


@pytest.mark.parametrize("seed", range(4))
def test_pair_palms_matches_a_naive_search(tabletop_rig: StereoRig, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(50):
        left = [
            _palm(*rng.uniform([0, 0], [764, 588]), rng.uniform(0.5, 1), rng.uniform(20, 120))
            for _ in range(rng.integers(0, 4))
        ]
        right = [
            _palm(*rng.uniform([0, 0], [764, 588]), rng.uniform(0.5, 1), rng.uniform(20, 120))
            for _ in range(rng.integers(0, 4))
        ]
        tolerance = rng.uniform(0.2, 2.0)
        got = pair_palms(left, right, tabletop_rig, tolerance)
        expected = _naive_pair(left, right, tabletop_rig, tolerance)
        assert (got is None) == (expected is None), (got, expected)
        if got is not None:
            assert got[0] is expected[0] and got[1] is expected[1]


def test_pair_all_palms_does_not_cross_two_hands_on_the_same_rows(rig: StereoRig) -> None:
    # Two hands at about 0.8 m on the same rows (palm boxes 80 px: 8 cm at fx 823 and
    # disparities near 123 px). By score alone the left view's best palm (x 467) would take
    # the right view's best (x 174: the other hand) and leave the second hand unpaired.
    def palm(u: float, score: float) -> PalmDetection:
        return PalmDetection(score, np.array([u, 240.0, 80.0, 80.0]), np.tile([u, 240.0], (7, 1)))

    left = [palm(467.0, 0.90), palm(298.0, 0.86)]
    right = [palm(174.0, 0.87), palm(345.0, 0.78)]
    for box_m in ((0.04, 0.2), (0.001, 10.0)):  # with and without the palm size rule
        pairs = pair_all_palms(left, right, rig, 0.5, box_m)
        got = sorted((pl.box[0], pr.box[0]) for pl, pr in pairs)
        assert got == [(298.0, 174.0), (467.0, 345.0)], box_m
    # The crossed pair alone implies a 3.3 cm palm box: refused.
    assert pair_all_palms(left[:1], right[:1], rig, 0.5) == []
    assert len(pair_all_palms(left[:1], right[:1], rig, 0.5, (0.001, 10.0))) == 1
    # Each palm used once; the best pair first.
    pairs = pair_all_palms(left + left, right, rig, 0.5)
    assert len(pairs) == 2 and pairs[0][0].score * pairs[0][1].score >= 0.86 * 0.87 - 1e-9
