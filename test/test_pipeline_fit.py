"""Tests of the template fit to both views' keypoints (:mod:`stereo_hand_mesh.pipeline.fit`).

Ground truth is the template hand itself: natural poses from ``sample_pose``, random shapes
within the limits and random global rotations, 0.4-0.9 m in front of an STB-like rig and of a
table-top rig whose right principal point differs; its skeleton joints are projected into both
views (and noise added). References: plain disparity triangulation written out here, the hand
model's own ``skin`` / ``forward_kinematics`` and central differences.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stereo_hand_mesh.errors import ConfigError, FitError, ShapeError, StereoHandMeshError
from stereo_hand_mesh.hand.chain import template_chain
from stereo_hand_mesh.hand.joints import JOINT_NAMES, JOINT_PARENTS, palm_frame
from stereo_hand_mesh.hand.model import mirror_joints_to_left, template_hand
from stereo_hand_mesh.hand.poses import sample_pose
from stereo_hand_mesh.hand.shape import SHAPE_LIMITS, sample_shape_vectors
from stereo_hand_mesh.hand.skeleton import (
    BONE_JOINTS,
    POSE_LIMITS,
    POSE_PARAM_NAMES,
    forward_kinematics,
)
from stereo_hand_mesh.pipeline import fit as fit_module
from stereo_hand_mesh.pipeline.fit import FitSettings, HandFit, fit_hand

#: name -> (k_left [fx, fy, cx, cy], k_right, baseline metres, hand centre x / z).
RIGS = {
    "stb": (
        np.array([822.8, 822.8, 318.5, 250.3]),
        np.array([822.8, 822.8, 318.5, 250.3]),
        0.12,
        0.0,
    ),
    # Table-top capture: the right camera's principal point sits 334 px further right, so the
    # hand is seen by both views when it is about half a baseline to the right.
    "tabletop": (
        np.array([605.2, 605.2, 260.0, 240.0]),
        np.array([605.2, 605.2, 594.0, 240.0]),
        0.486,
        None,
    ),
}
NO_PRIORS = FitSettings(pose_prior_weight=0.0, shape_prior_weight=0.0)
MIDDLE_MCP = JOINT_NAMES.index("middle_mcp")


@dataclasses.dataclass(frozen=True)
class Scene:
    """A posed template hand seen by a rig (joints in the left optical frame, metres)."""

    pose: np.ndarray
    shape: np.ndarray
    global_rot: np.ndarray
    trans: np.ndarray
    joints: np.ndarray
    uv_left: np.ndarray
    uv_right: np.ndarray


def project(joints: np.ndarray, rig: str) -> tuple[np.ndarray, np.ndarray]:
    """(21, 3) metres -> left and right (21, 2) pixels, written out per coordinate."""
    kl, kr, baseline, _ = RIGS[rig]
    x, y, z = joints.T
    uv_l = np.stack([kl[0] * x / z + kl[2], kl[1] * y / z + kl[3]], axis=1)
    uv_r = np.stack([kr[0] * (x - baseline) / z + kr[2], kr[1] * y / z + kr[3]], axis=1)
    return uv_l, uv_r


def triangulate(uv_l: np.ndarray, uv_r: np.ndarray, rig: str) -> np.ndarray:
    """Plain disparity triangulation (the brief's formulas), (21, 3) metres."""
    kl, kr, baseline, _ = RIGS[rig]
    d = (uv_l[:, 0] - kl[2]) - (uv_r[:, 0] - kr[2])
    z = kl[0] * baseline / d
    return np.stack([(uv_l[:, 0] - kl[2]) * z / kl[0], (uv_l[:, 1] - kl[3]) * z / kl[1], z], 1)


def make_scene(
    rng: np.random.Generator,
    rig: str,
    handedness: str = "right",
    pose: np.ndarray | None = None,
    shape: np.ndarray | None = None,
) -> Scene:
    """A random hand 0.4-0.9 m in front of ``rig`` (mirrored for a left hand)."""
    model = template_hand()
    pose = sample_pose(rng, 1)[0] if pose is None else pose
    shape = sample_shape_vectors(rng, 1)[0] if shape is None else shape
    rot = Rotation.random(random_state=int(rng.integers(1 << 31))).as_rotvec()
    _, skeleton = model.skin(pose[None], shape[None], rot[None], np.zeros((1, 3)))
    z = rng.uniform(0.4, 0.9)
    ratio = RIGS[rig][3]
    centre_x = RIGS[rig][2] / 2 if ratio is None else ratio * z
    centre = np.array([centre_x + rng.uniform(-0.03, 0.03), rng.uniform(-0.05, 0.05) * z, z])
    offset = centre - skeleton[0].mean(axis=0)
    if handedness == "left":
        # The left hand is the mirror of a right hand whose joints sit at centre * (-1, 1, 1).
        offset = centre * np.array([-1.0, 1.0, 1.0]) - skeleton[0].mean(axis=0)
    joints = skeleton[0] + offset
    if handedness == "left":
        joints = mirror_joints_to_left(joints)
    uv_l, uv_r = project(joints, rig)
    return Scene(pose, shape, rot, offset, joints, uv_l, uv_r)


def run_fit(scene: Scene, rig: str, noise_px: float = 0.0, rng=None, **kwargs) -> HandFit:
    kl, kr, baseline, _ = RIGS[rig]
    uv_l, uv_r = scene.uv_left, scene.uv_right
    if noise_px > 0:
        uv_l = uv_l + noise_px * rng.standard_normal(uv_l.shape)
        uv_r = uv_r + noise_px * rng.standard_normal(uv_r.shape)
    weights = kwargs.pop("weights", np.ones((2, 21)))
    return fit_hand(uv_l, uv_r, kl, kr, baseline, weights, **kwargs)


def mean_error_mm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean() * 1e3)


# --------------------------------------------------------------------------------------------
# The solver's kinematics against the hand model.


def test_lean_kinematics_match_forward_kinematics() -> None:
    """The fit's FK equals the skeleton module's for random (also extreme) poses and shapes."""
    rng = np.random.default_rng(0)
    model = template_hand()
    chain = template_chain()
    poses = sample_pose(rng, 8, uniform=True)
    shapes = sample_shape_vectors(rng, 8, spread=3.0)
    rots = Rotation.random(8, random_state=1).as_rotvec()
    trans = rng.normal(size=(8, 3))
    _, rest = model.shaped_rest(shapes, 8)
    _, reference = forward_kinematics(rest, poses, model.joint_frames, rots, trans)
    for i in range(8):
        rot = Rotation.from_rotvec(rots[i]).as_matrix()
        posed = fit_module._pose_skeleton(chain, poses[i], shapes[i], rot, trans[i])
        worst = np.abs(posed.joints - reference[i]).max()
        assert worst < 1e-12, f"hand {i}: largest difference {worst} m"


def test_joint_jacobian_matches_central_differences() -> None:
    rng = np.random.default_rng(1)
    chain = template_chain()
    pose = sample_pose(rng, 1, uniform=True)[0]
    shape = sample_shape_vectors(rng, 1)[0]
    rot = Rotation.random(random_state=2).as_matrix()
    trans = np.array([0.05, -0.02, 0.6])
    state = fit_module._State(pose, shape, rot, trans)
    posed = fit_module._pose_skeleton(chain, pose, shape, rot, trans)
    analytic = fit_module._joint_jacobian(chain, posed, shape, trans)
    eps = 1e-6
    numeric = np.empty_like(analytic)
    for k in range(len(analytic)):
        step = np.zeros(len(analytic))
        step[k] = eps
        plus, minus = (
            fit_module._State(
                pose + s * step[:26],
                shape + s * step[26:35],
                fit_module._rotation(s * step[35:38]) @ state.rot,
                trans + s * step[38:],
            )
            for s in (1.0, -1.0)
        )
        jp = fit_module._pose_skeleton(chain, plus.pose, plus.shape, plus.rot, plus.trans)
        jm = fit_module._pose_skeleton(chain, minus.pose, minus.shape, minus.rot, minus.trans)
        numeric[k] = (jp.joints - jm.joints) / (2 * eps)
    diff = np.abs(analytic - numeric)
    k, j, c = np.unravel_index(np.argmax(diff), diff.shape)
    assert diff.max() < 1e-8, f"parameter {k}, joint {JOINT_NAMES[j]}, axis {c}: {diff.max()}"


@pytest.mark.parametrize("handedness", ["right", "left"])
def test_outputs_match_the_hand_model(handedness: str) -> None:
    """Vertices and joints are the model's skin of the returned parameters (mirrored if left)."""
    rng = np.random.default_rng(2)
    scene = make_scene(rng, "stb", handedness)
    fit = run_fit(scene, "stb", 1.0, rng, handedness=handedness)
    model = template_hand()
    vertices, skeleton = model.skin(
        fit.pose[None], fit.shape[None], fit.global_rot[None], fit.trans[None]
    )
    if handedness == "left":
        vertices, skeleton = mirror_joints_to_left(vertices), mirror_joints_to_left(skeleton)
    assert fit.vertices.shape == (model.num_vertices, 3)
    np.testing.assert_allclose(fit.vertices, vertices[0], atol=1e-12)
    np.testing.assert_allclose(fit.joints, skeleton[0], atol=1e-12)
    # The skeleton joints agree with the model's regressed joints (hand/regressor.py).
    regressed = model.joint_regressor @ fit.vertices
    assert mean_error_mm(regressed, fit.joints) < 0.5


# --------------------------------------------------------------------------------------------
# Accuracy.


@pytest.mark.parametrize("rig", list(RIGS))
def test_exact_recovery_without_noise(rig: str) -> None:
    rng = np.random.default_rng(10)
    exact = dataclasses.replace(
        NO_PRIORS, tolerance=1e-12, step_tolerance_m=1e-12, max_iterations=40
    )
    worst_exact, default = 0.0, []
    for _ in range(8):
        scene = make_scene(rng, rig)
        free = run_fit(scene, rig, settings=exact)
        worst_exact = max(worst_exact, mean_error_mm(free.joints, scene.joints))
        default.append(mean_error_mm(run_fit(scene, rig).joints, scene.joints))
    # Without priors, run to convergence, the data term alone recovers the hand exactly; the
    # default priors pull the proportions slightly towards the mean hand, and the default
    # stopping rules leave up to about 0.1 mm.
    assert worst_exact < 0.01, f"largest mean error without priors {worst_exact:.2e} mm"
    assert np.mean(default) < 1.0, f"mean error with default settings {np.mean(default):.3f} mm"
    assert max(default) < 1.5, f"largest mean error with default settings {max(default):.3f} mm"


@pytest.mark.parametrize("rig", list(RIGS))
def test_fit_beats_triangulation_under_noise(rig: str) -> None:
    rng = np.random.default_rng(11)
    fitted, triangulated = [], []
    for _ in range(20):
        scene = make_scene(rng, rig)
        noise = 1.5 * rng.standard_normal((2, 21, 2))
        uv_l, uv_r = scene.uv_left + noise[0], scene.uv_right + noise[1]
        kl, kr, baseline, _ = RIGS[rig]
        fit = fit_hand(uv_l, uv_r, kl, kr, baseline, np.ones((2, 21)))
        fitted.append(mean_error_mm(fit.joints, scene.joints))
        triangulated.append(mean_error_mm(triangulate(uv_l, uv_r, rig), scene.joints))
    fit_mm, tri_mm = float(np.mean(fitted)), float(np.mean(triangulated))
    print(f"{rig}: 1.5 px noise, fit {fit_mm:.2f} mm, triangulation {tri_mm:.2f} mm")
    # STB's short baseline makes triangulated depth noisy, which the fit averages out; the
    # table-top rig's wide baseline leaves the fit the gain of two views and the skeleton.
    ratio = {"stb": 0.6, "tabletop": 0.8}[rig]
    assert fit_mm < ratio * tri_mm, f"fit {fit_mm:.2f} mm vs triangulation {tri_mm:.2f} mm"


@pytest.mark.parametrize("rig", list(RIGS))
def test_outliers_are_absorbed_by_the_robust_loss(rig: str) -> None:
    """Three keypoints 40 px off barely move the fit; least squares is dragged away."""
    rng = np.random.default_rng(12)
    least_squares = FitSettings(robust_scale_px=1e6)
    clean, robust, plain, flagged = [], [], [], []
    for _ in range(12):
        scene = make_scene(rng, rig)
        noise = rng.standard_normal((2, 21, 2))
        uv = np.stack([scene.uv_left, scene.uv_right]) + noise
        kl, kr, baseline, _ = RIGS[rig]
        args = (kl, kr, baseline, np.ones((2, 21)))
        clean.append(mean_error_mm(fit_hand(uv[0], uv[1], *args).joints, scene.joints))
        joints = rng.choice(21, 3, replace=False)
        views = rng.integers(0, 2, 3)
        angles = rng.uniform(0, 2 * np.pi, 3)
        uv[views, joints] += 40.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        fit = fit_hand(uv[0], uv[1], *args)
        robust.append(mean_error_mm(fit.joints, scene.joints))
        plain.append(
            mean_error_mm(fit_hand(*uv, *args, settings=least_squares).joints, scene.joints)
        )
        flagged.append(np.mean(fit.residuals_px[views, joints] > 20.0))
    print(
        f"{rig}: clean {np.mean(clean):.2f} mm, 3 outliers {np.mean(robust):.2f} mm, "
        f"least squares {np.mean(plain):.2f} mm"
    )
    assert np.mean(robust) < np.mean(clean) + 1.5
    assert np.mean(robust) < 0.5 * np.mean(plain)
    assert np.mean(flagged) > 0.8, "the outliers' residuals expected to stay near 40 px"


def test_zero_weights_ignore_keypoints() -> None:
    rng = np.random.default_rng(13)
    scene = make_scene(rng, "stb")
    weights = np.ones((2, 21))
    weights[0, [4, 8]] = 0.0  # two tips unseen in the left view
    weights[1, [0, 12, 16]] = 0.0  # wrist and two tips unseen in the right view
    kl, kr, baseline, _ = RIGS["stb"]
    garbage_l, garbage_r = scene.uv_left.copy(), scene.uv_right.copy()
    garbage_l[[4, 8]] += 300.0
    garbage_r[[0, 12, 16]] -= 250.0
    a = fit_hand(scene.uv_left, scene.uv_right, kl, kr, baseline, weights)
    b = fit_hand(garbage_l, garbage_r, kl, kr, baseline, weights)
    for name in ("pose", "shape", "global_rot", "trans", "joints"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.cost == b.cost
    assert mean_error_mm(b.joints, scene.joints) < 1.5
    assert b.residuals_px[0, 4] > 200.0  # residuals are reported for ignored keypoints too


@pytest.mark.parametrize("rig", list(RIGS))
def test_warm_start_converges_in_fewer_iterations(rig: str) -> None:
    rng = np.random.default_rng(14)
    model = template_hand()
    cold_its, warm_its, cold_err, warm_err = [], [], [], []
    for _ in range(10):
        scene = make_scene(rng, rig)
        previous = run_fit(scene, rig, 1.0, rng)
        # The next pair, 1/30 s later: small changes of pose, orientation and position.
        pose = np.clip(scene.pose + 0.02 * rng.standard_normal(26), *POSE_LIMITS)
        turn = Rotation.from_rotvec(np.radians(1.0) * rng.standard_normal(3) / np.sqrt(3))
        rot = (turn * Rotation.from_rotvec(scene.global_rot)).as_rotvec()
        trans = scene.trans + 0.003 * rng.standard_normal(3) / np.sqrt(3)
        _, skeleton = model.skin(pose[None], scene.shape[None], rot[None], trans[None])
        uv_l, uv_r = project(skeleton[0], rig)
        uv_l = uv_l + rng.standard_normal(uv_l.shape)
        uv_r = uv_r + rng.standard_normal(uv_r.shape)
        kl, kr, baseline, _ = RIGS[rig]
        cold = fit_hand(uv_l, uv_r, kl, kr, baseline, np.ones((2, 21)))
        warm = fit_hand(uv_l, uv_r, kl, kr, baseline, np.ones((2, 21)), init=previous)
        cold_its.append(cold.iterations)
        warm_its.append(warm.iterations)
        cold_err.append(mean_error_mm(cold.joints, skeleton[0]))
        warm_err.append(mean_error_mm(warm.joints, skeleton[0]))
    print(f"{rig}: iterations cold {np.mean(cold_its):.1f}, warm {np.mean(warm_its):.1f}")
    assert np.mean(warm_its) < np.mean(cold_its)
    assert max(warm_its) <= FitSettings().max_iterations_warm
    assert np.mean(warm_err) < np.mean(cold_err) + 0.3


def test_limits_are_respected() -> None:
    """Keypoints of a hand posed and shaped beyond the limits give a fit within them."""
    rng = np.random.default_rng(15)
    lo, hi = POSE_LIMITS
    for k in range(4):
        pose = np.where(rng.random(26) < 0.5, lo - 0.3, hi + 0.3)
        shape = np.where(rng.random(9) < 0.5, SHAPE_LIMITS[0], SHAPE_LIMITS[1])
        scene = make_scene(rng, "stb", pose=pose if k % 2 else np.clip(pose, lo, hi), shape=shape)
        fit = run_fit(scene, "stb", 1.0, rng)
        assert np.all(fit.pose >= lo) and np.all(fit.pose <= hi)
        assert np.all(fit.shape >= SHAPE_LIMITS[0]) and np.all(fit.shape <= SHAPE_LIMITS[1])
        assert np.isfinite(fit.cost) and np.all(np.isfinite(fit.vertices))


# --------------------------------------------------------------------------------------------
# Joint orientations.


def _bone_target(j: int) -> tuple[int, int]:
    """(from, to) joints of the bone that joint j's x axis follows."""
    if j == 0:
        return 0, MIDDLE_MCP
    if j in BONE_JOINTS:
        return j, j + 1
    return JOINT_PARENTS[j], j


@pytest.mark.parametrize("handedness", ["right", "left"])
def test_joint_rotations_are_frames_along_the_bones(handedness: str) -> None:
    rng = np.random.default_rng(16)
    scene = make_scene(rng, "tabletop", handedness)
    fit = run_fit(scene, "tabletop", 1.0, rng, handedness=handedness)
    rot = fit.joint_rotations
    assert rot.shape == (21, 3, 3)
    np.testing.assert_allclose(
        rot.transpose(0, 2, 1) @ rot, np.broadcast_to(np.eye(3), rot.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
    for j in range(21):
        a, b = _bone_target(j)
        bone = fit.joints[b] - fit.joints[a]
        bone /= np.linalg.norm(bone)
        assert rot[j, :, 0] @ bone > 1 - 1e-12, f"{JOINT_NAMES[j]}: x is not along its bone"
    # The wrist's z is the palm normal on the palmar side (palm_frame's z, up to the palm's
    # non-planarity).
    _, palm = palm_frame(fit.joints, handedness)
    assert rot[0, :, 2] @ palm[:, 2] > 0.9


def test_joint_rotations_match_forward_kinematics_transforms() -> None:
    """Naive reference: each bone's rotation from forward_kinematics times its rest frame."""
    rng = np.random.default_rng(17)
    scene = make_scene(rng, "stb")
    fit = run_fit(scene, "stb", 1.0, rng)
    model = template_hand()
    _, rest = model.shaped_rest(fit.shape[None], 1)
    transforms, _ = forward_kinematics(
        rest, fit.pose[None], model.joint_frames, fit.global_rot[None], fit.trans[None]
    )
    for j in range(1, 21):
        joint = j if j in BONE_JOINTS else JOINT_PARENTS[j]
        b = BONE_JOINTS.index(joint)
        frame = transforms[0, b, :, :3] @ model.joint_frames[b]  # (e_flex, e_bone, e_palm)
        expected = np.stack([frame[:, 1], -frame[:, 0], frame[:, 2]], axis=1)
        np.testing.assert_allclose(
            fit.joint_rotations[j], expected, atol=1e-12, err_msg=JOINT_NAMES[j]
        )


# --------------------------------------------------------------------------------------------
# Left hands.


def test_left_hand_is_recovered_as_a_mirrored_right_hand() -> None:
    rng = np.random.default_rng(18)
    for rig in RIGS:
        scene = make_scene(rng, rig, "left")
        left = run_fit(scene, rig, handedness="left")
        assert left.handedness == "left"
        assert mean_error_mm(left.joints, scene.joints) < 1.0
        # The parameters are the mirrored right hand's: its pose and its wrist.
        flex = [i for i, n in enumerate(POSE_PARAM_NAMES) if n.endswith("flex")]
        assert np.abs(left.pose[flex] - scene.pose[flex]).mean() < 0.05
        np.testing.assert_allclose(left.trans, scene.trans, atol=2e-3)
        np.testing.assert_allclose(left.joints[0], left.trans * [-1.0, 1.0, 1.0], atol=1e-12)
        # A right hand cannot explain a left hand's keypoints.
        right = run_fit(scene, rig, handedness="right")
        assert mean_error_mm(right.joints, scene.joints) > 5.0


def test_warm_start_keeps_handedness() -> None:
    rng = np.random.default_rng(19)
    scene = make_scene(rng, "stb", "left")
    previous = run_fit(scene, "stb", handedness="left")
    again = run_fit(scene, "stb", handedness="left", init=previous)
    assert mean_error_mm(again.joints, scene.joints) < 1.0
    with pytest.raises(ConfigError, match="handedness 'right'; got 'left'"):
        run_fit(scene, "stb", handedness="right", init=previous)


# --------------------------------------------------------------------------------------------
# World landmarks.


def test_world_prior_is_scale_free_and_helps() -> None:
    rng = np.random.default_rng(20)
    with_prior, without = [], []
    for k in range(10):
        scene = make_scene(rng, "stb")
        noise = 2.0 * rng.standard_normal((2, 21, 2))
        uv_l, uv_r = scene.uv_left + noise[0], scene.uv_right + noise[1]
        kl, kr, baseline, _ = RIGS["stb"]
        args = (uv_l, uv_r, kl, kr, baseline, np.ones((2, 21)))
        # The network's landmarks: the right shape (5 mm noise), a wrong size, another origin.
        landmarks = 1.2 * (scene.joints - scene.joints[MIDDLE_MCP])
        landmarks += 0.005 * rng.standard_normal(landmarks.shape)
        a = fit_hand(*args, world_landmarks=landmarks)
        with_prior.append(mean_error_mm(a.joints, scene.joints))
        without.append(mean_error_mm(fit_hand(*args).joints, scene.joints))
        if k < 2:
            b = fit_hand(*args, world_landmarks=0.8 * landmarks + np.array([0.1, -0.2, 0.3]))
            # Same cost function; rounding may move the stopping point by micrometres.
            np.testing.assert_allclose(b.joints, a.joints, atol=1e-5)
    print(f"2 px noise: landmarks {np.mean(with_prior):.2f} mm, none {np.mean(without):.2f} mm")
    assert np.mean(with_prior) < np.mean(without)


# --------------------------------------------------------------------------------------------
# Bad input.


def _good_args() -> dict:
    scene = make_scene(np.random.default_rng(21), "stb")
    kl, kr, baseline, _ = RIGS["stb"]
    return {
        "uv_left": scene.uv_left,
        "uv_right": scene.uv_right,
        "k_left": kl,
        "k_right": kr,
        "baseline_m": baseline,
        "weights": np.ones((2, 21)),
    }


def _fit_with(**changes: np.ndarray) -> HandFit:
    """A right-hand fit of the shared scene with some fields replaced."""
    return dataclasses.replace(fit_hand(**_good_args()), **changes)


def _palm_unseen_on_the_right() -> np.ndarray:
    weights = np.ones((2, 21))
    weights[1, [0, 1, 5, 9, 13, 17]] = 0.0
    return weights


def _with_nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flat[3] = np.nan
    return a


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda a: {"uv_left": a["uv_left"][:20]},
            ShapeError,
            r"uv_left expected shape \(21, 2\); got \(20, 2\)",
        ),
        (lambda a: {"uv_right": a["uv_right"].T}, ShapeError, "uv_right expected shape"),
        (lambda a: {"uv_left": _with_nan(a["uv_left"])}, ShapeError, "uv_left expected finite"),
        (lambda a: {"uv_right": _with_nan(a["uv_right"])}, ShapeError, "uv_right expected finite"),
        (lambda a: {"weights": np.ones(21)}, ShapeError, r"weights expected shape \(2, 21\)"),
        (lambda a: {"weights": _with_nan(a["weights"])}, ShapeError, "weights expected finite"),
        (
            lambda a: {"weights": np.full((2, 21), 1.5)},
            ShapeError,
            r"weights expected values in \[0, 1\]; got 1.5",
        ),
        (lambda a: {"weights": -np.ones((2, 21))}, ShapeError, r"in \[0, 1\]; got -1.0"),
        (
            lambda a: {"weights": np.zeros((2, 21))},
            ConfigError,
            "at least one keypoint with weight > 0",
        ),
        (lambda a: {"k_left": a["k_left"][:3]}, ShapeError, r"k_left expected shape \(4,\)"),
        (
            lambda a: {"k_right": np.array([0.0, 822.8, 318.5, 250.3])},
            ConfigError,
            "k_right expected fx > 0",
        ),
        (
            lambda a: {"k_right": np.array([822.8, 822.8, 318.5, 260.0])},
            ConfigError,
            "k_right cy expected 250.3",
        ),
        (lambda a: {"baseline_m": 0.0}, ConfigError, "baseline_m expected a finite value > 0"),
        (lambda a: {"baseline_m": float("nan")}, ConfigError, "baseline_m"),
        (
            lambda a: {"world_landmarks": np.zeros((21, 2))},
            ShapeError,
            r"world_landmarks expected shape \(21, 3\)",
        ),
        (lambda a: {"world_landmarks": np.zeros((21, 3))}, ShapeError, "hand-sized spread"),
        (lambda a: {"handedness": "both"}, ConfigError, "handedness expected one of"),
        (lambda a: {"init": "previous"}, ConfigError, "init expected a HandFit or None; got str"),
        (
            lambda a: {"settings": {"iterations": 3}},
            ConfigError,
            "settings expected a FitSettings",
        ),
        (
            lambda a: {"init": _fit_with(pose=np.full(26, np.nan))},
            ShapeError,
            "init.pose expected finite",
        ),
        (
            lambda a: {"init": _fit_with(trans=np.zeros(2))},
            ShapeError,
            r"init.trans expected shape \(3,\)",
        ),
        # Swapped views: every disparity is negative.
        (
            lambda a: {"uv_left": a["uv_right"], "uv_right": a["uv_left"]},
            FitError,
            "positive disparity",
        ),
        # The palm unseen by the right view: a cold start has nothing to align.
        (lambda a: {"weights": _palm_unseen_on_the_right()}, FitError, "palm keypoints"),
    ],
)
def test_bad_input_is_refused(change, error: type[Exception], message: str) -> None:
    args = _good_args()
    args.update(change(args))
    with pytest.raises(error, match=message) as info:
        fit_hand(**args)
    assert isinstance(info.value, StereoHandMeshError)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_iterations", 0),
        ("max_iterations", 2.5),
        ("max_iterations_warm", True),
        ("tolerance", 0.0),
        ("tolerance_warm", -1e-3),
        ("step_tolerance_m", 0.0),
        ("robust_loss", "l1"),
        ("robust_scale_px", -1.0),
        ("world_prior_weight", float("nan")),
        ("pose_prior_weight", -0.1),
        ("shape_prior_weight", float("inf")),
        ("min_disparity_px", 0.0),
        ("initial_damping", 0.0),
    ],
)
def test_settings_are_validated(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"FitSettings.{field} expected"):
        FitSettings(**{field: value})


def test_huber_loss_also_fits() -> None:
    rng = np.random.default_rng(22)
    scene = make_scene(rng, "tabletop")
    fit = run_fit(scene, "tabletop", 1.0, rng, settings=FitSettings(robust_loss="huber"))
    assert mean_error_mm(fit.joints, scene.joints) < 3.0


def test_accepts_lists_and_numpy_scalars() -> None:
    args = _good_args()
    reference = fit_hand(**args)
    args.update(
        uv_left=args["uv_left"].tolist(),
        k_left=args["k_left"].tolist(),
        baseline_m=np.float32(args["baseline_m"]),
    )
    fit = fit_hand(**args)
    assert mean_error_mm(fit.joints, reference.joints) < 0.01
