"""Tests of the differentiable template fit (:mod:`stereo_hand_mesh.model.hand_fit_torch`).

References: the hand model's own ``skin`` / ``forward_kinematics`` and the numpy fit's lean
kinematics (float64, 1e-9 m); scipy's rotations; the numpy fit itself
(:func:`~stereo_hand_mesh.pipeline.fit.fit_hand`, converged with tight tolerances) on
synthetic template hands seen by an STB-like and a table-top rig; ``torch.autograd.gradcheck``
in float64; geometric invariants (a keypoint of weight 0 gets no gradient, a batch fits as its
pairs one by one).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from stereo_hand_mesh.errors import ConfigError, FitError, ShapeError
from stereo_hand_mesh.hand.chain import template_chain
from stereo_hand_mesh.hand.joints import JOINT_NAMES
from stereo_hand_mesh.hand.model import mirror_joints_to_left, template_hand
from stereo_hand_mesh.hand.poses import sample_pose
from stereo_hand_mesh.hand.shape import sample_shape_vectors
from stereo_hand_mesh.hand.skeleton import BONE_NAMES, forward_kinematics
from stereo_hand_mesh.model import hand_fit_torch as hft
from stereo_hand_mesh.model.hand_fit_torch import (
    HandParams,
    fit_hand_torch,
    forward_kinematics_torch,
    hand_params_from_fits,
    skin_hand_torch,
)
from stereo_hand_mesh.pipeline import fit as fit_module
from stereo_hand_mesh.pipeline.fit import FitSettings, HandFit, fit_hand

F64 = torch.float64
#: name -> (k_left [fx, fy, cx, cy], k_right, baseline metres); as test_pipeline_fit's rigs.
RIGS = {
    "stb": (np.array([822.8, 822.8, 318.5, 250.3]), np.array([822.8, 822.8, 318.5, 250.3]), 0.12),
    "tabletop": (
        np.array([605.2, 605.2, 260.0, 240.0]),
        np.array([605.2, 605.2, 594.0, 240.0]),
        0.486,
    ),
}
#: The numpy fit run to convergence (its warm start from its own result).
TIGHT = FitSettings(max_iterations_warm=100, tolerance_warm=1e-15, step_tolerance_m=1e-15)
NO_PRIORS = FitSettings(pose_prior_weight=0.0, shape_prior_weight=0.0, world_prior_weight=0.0)


def worst(actual: np.ndarray, expected: np.ndarray) -> tuple[float, tuple[int, ...]]:
    """Largest absolute difference and its index."""
    diff = np.abs(np.asarray(actual) - np.asarray(expected))
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return float(diff.max()), tuple(int(i) for i in where)


def tensor(value: object, device: torch.device | str = "cpu", dtype=F64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype, device=device)


@dataclasses.dataclass(frozen=True)
class Pair:
    """One synthetic stereo pair: its keypoints, the camera and the numpy fits."""

    uv_left: np.ndarray
    uv_right: np.ndarray
    rig: str
    handedness: str
    weights: np.ndarray
    truth: HandFit  # pose/shape/global_rot/trans of the template hand that was imaged
    joints: np.ndarray  # (21, 3) true joints, left optical frame


def project(joints: np.ndarray, rig: str) -> tuple[np.ndarray, np.ndarray]:
    """(21, 3) metres, left optical frame -> left and right (21, 2) pixels, written out."""
    kl, kr, baseline = RIGS[rig]
    x, y, z = joints.T
    uv_l = np.stack([kl[0] * x / z + kl[2], kl[1] * y / z + kl[3]], axis=1)
    uv_r = np.stack([kr[0] * (x - baseline) / z + kr[2], kr[1] * y / z + kr[3]], axis=1)
    return uv_l, uv_r


def make_pair(
    rng: np.random.Generator,
    rig: str,
    handedness: str = "right",
    noise_px: float = 1.0,
    outliers: int = 0,
) -> Pair:
    """A random template hand 0.4-0.9 m in front of ``rig``, its keypoints projected in
    both views (noise, optional 30 px outliers in the left view)."""
    baseline = RIGS[rig][2]
    model = template_hand()
    pose = sample_pose(rng, 1)[0]
    shape = sample_shape_vectors(rng, 1)[0]
    rot = Rotation.random(random_state=int(rng.integers(1 << 31))).as_rotvec()
    _, skeleton = model.skin(pose[None], shape[None], rot[None], np.zeros((1, 3)))
    z = rng.uniform(0.4, 0.9)
    centre_x = 0.0 if rig == "stb" else baseline / 2
    centre = np.array([centre_x + rng.uniform(-0.03, 0.03), rng.uniform(-0.05, 0.05) * z, z])
    if handedness == "left":
        centre = centre * np.array([-1.0, 1.0, 1.0])
    trans = centre - skeleton[0].mean(axis=0)
    joints = skeleton[0] + trans
    if handedness == "left":
        joints = mirror_joints_to_left(joints)
    uv_l, uv_r = project(joints, rig)
    uv_l = uv_l + noise_px * rng.standard_normal(uv_l.shape)
    uv_r = uv_r + noise_px * rng.standard_normal(uv_r.shape)
    for j in rng.choice(21, size=outliers, replace=False):
        uv_l[j] += 30.0 * rng.choice([-1.0, 1.0], size=2)
    truth = HandFit(
        pose=pose,
        shape=shape,
        global_rot=rot,
        trans=trans,
        vertices=np.zeros((0, 3)),
        joints=joints,
        joint_rotations=np.zeros((21, 3, 3)),
        residuals_px=np.zeros((2, 21)),
        iterations=0,
        cost=0.0,
        handedness=handedness,
    )
    return Pair(uv_l, uv_r, rig, handedness, np.ones((2, 21)), truth, joints)


def numpy_fit(
    pair: Pair,
    settings: FitSettings | None = None,
    init: HandFit | None = None,
    landmarks: np.ndarray | None = None,
) -> HandFit:
    kl, kr, baseline = RIGS[pair.rig]
    return fit_hand(
        pair.uv_left,
        pair.uv_right,
        kl,
        kr,
        baseline,
        pair.weights,
        world_landmarks=landmarks,
        init=init,
        settings=settings,
        handedness=pair.handedness,
    )


def torch_inputs(
    pairs: list[Pair], device: torch.device | str = "cpu", dtype=F64
) -> dict[str, torch.Tensor]:
    """fit_hand_torch's data arguments for a batch of pairs."""
    return {
        "uv_left": tensor([p.uv_left for p in pairs], device, dtype),
        "uv_right": tensor([p.uv_right for p in pairs], device, dtype),
        "k_left": tensor([RIGS[p.rig][0] for p in pairs], device, dtype),
        "k_right": tensor([RIGS[p.rig][1] for p in pairs], device, dtype),
        "baseline_m": tensor([RIGS[p.rig][2] for p in pairs], device, dtype),
        "weights": tensor([p.weights for p in pairs], device, dtype),
    }


def perturbed(params: HandParams, seed: int, size: float = 1.0) -> HandParams:
    """Parameters moved by N(0, 0.05 rad) per pose parameter, N(0, 0.02) per shape factor,
    a turn of N(0, 0.03 rad) per axis and a shift of N(0, 5 mm) per axis (times ``size``)."""
    g = torch.Generator().manual_seed(seed)

    def noise(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return x + size * sigma * torch.randn(x.shape, generator=g, dtype=F64).to(x)

    return HandParams(
        noise(params.pose, 0.05),
        noise(params.shape, 0.02),
        noise(params.global_rot, 0.03),
        noise(params.trans, 0.005),
    )


# --------------------------------------------------------------------------------------------
# Kinematics and skinning against the numpy model.


def test_skeleton_and_vertices_match_the_hand_model(device: torch.device) -> None:
    """Extreme poses, shapes beyond the limits' spread, rotations of 0 and pi: 1e-9 m."""
    rng = np.random.default_rng(0)
    model = template_hand()
    chain = template_chain()
    batch = 8
    poses = sample_pose(rng, batch, uniform=True)
    shapes = sample_shape_vectors(rng, batch, spread=3.0)
    rots = Rotation.random(batch, random_state=1).as_rotvec()
    rots[0] = 0.0
    rots[1] = [np.pi, 0.0, 0.0]
    rots[2] = [0.0, 1e-9, 0.0]
    trans = rng.normal(size=(batch, 3))
    vertices, skeleton = model.skin(poses, shapes, rots, trans)
    _, rest = model.shaped_rest(shapes, batch)
    transforms, _ = forward_kinematics(rest, poses, model.joint_frames, rots, trans)
    args = [tensor(a, device) for a in (poses, shapes, rots, trans)]

    joints_t, bone_rot_t = forward_kinematics_torch(*args)
    vertices_t, skin_joints_t = skin_hand_torch(*args)
    assert vertices_t.shape == (batch, model.num_vertices, 3) and vertices_t.dtype == F64
    for name, actual, expected in (
        ("vertices", vertices_t, vertices),
        ("skeleton", joints_t, skeleton),
        ("skin skeleton", skin_joints_t, skeleton),
        ("bone rotations", bone_rot_t, transforms[..., :3]),
    ):
        diff, where = worst(actual.cpu().numpy(), expected)
        assert diff < 1e-9, f"{name}: largest difference {diff} at {where}"
    # The numpy fit's lean kinematics, pair by pair.
    for i in range(batch):
        rot = Rotation.from_rotvec(rots[i]).as_matrix()
        posed = fit_module._pose_skeleton(chain, poses[i], shapes[i], rot, trans[i])
        diff, (j, _) = worst(joints_t[i].cpu().numpy(), posed.joints)
        assert diff < 1e-9, f"hand {i}: lean FK differs by {diff} m at {JOINT_NAMES[j]}"
        diff, (b, _, _) = worst(bone_rot_t[i].cpu().numpy(), posed.bone_rotations)
        assert diff < 1e-9, f"hand {i}: bone rotation differs by {diff} at {BONE_NAMES[b]}"


def test_float32_kinematics_follow_float64() -> None:
    rng = np.random.default_rng(1)
    trans = rng.normal(size=(4, 3)) * 0.1 + [0.0, 0.0, 0.6]
    args = [sample_pose(rng, 4), sample_shape_vectors(rng, 4), rng.normal(size=(4, 3)), trans]
    v64, j64 = skin_hand_torch(*[tensor(a) for a in args])
    v32, j32 = skin_hand_torch(*[tensor(a, dtype=torch.float32) for a in args])
    assert v32.dtype == torch.float32
    assert (v32.double() - v64).abs().max() < 1e-6  # metres
    assert (j32.double() - j64).abs().max() < 1e-6


def test_constants_built_under_inference_mode_still_train() -> None:
    """A first call under ``torch.inference_mode`` must not cache inference tensors that a
    later autograd call could not save for backward."""
    hft._torch_chain.cache_clear()
    args = [torch.zeros(1, 26), torch.ones(1, 9), torch.zeros(1, 3), torch.tensor([[0, 0, 0.5]])]
    with torch.inference_mode():
        skin_hand_torch(*args)
    pose = args[0].clone().requires_grad_()
    vertices, _ = skin_hand_torch(pose, *args[1:])
    vertices.sum().backward()
    assert pose.grad is not None and torch.isfinite(pose.grad).all()


def test_rotation_maps_match_scipy_near_zero_and_pi() -> None:
    rng = np.random.default_rng(2)
    axes = rng.normal(size=(6, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-10, 1e-5, 1.0, np.pi - 1e-7, np.pi])
    rotvecs = np.concatenate([axes * angles[:, None], Rotation.random(20, 3).as_rotvec()])
    matrices = hft._rotation_matrices(tensor(rotvecs))
    diff, where = worst(matrices.numpy(), Rotation.from_rotvec(rotvecs).as_matrix())
    assert diff < 1e-12, f"exp: largest difference {diff} at {where}"
    back = hft._axis_angles(matrices).numpy()
    # Compare as rotations (an angle of pi has two axis-angle vectors).
    diff, where = worst(Rotation.from_rotvec(back).as_matrix(), matrices.numpy())
    assert diff < 1e-12, f"log: largest difference {diff} at {where}"
    assert np.all(np.linalg.norm(back, axis=1) <= np.pi + 1e-12)
    inside = np.linalg.norm(rotvecs, axis=1) < np.pi - 1e-3
    np.testing.assert_allclose(back[inside], rotvecs[inside], atol=1e-12)


def test_kinematics_gradcheck() -> None:
    """Float64 gradients of skeleton and vertices w.r.t. every parameter (rotation near 0)."""
    rng = np.random.default_rng(3)
    pose = tensor(sample_pose(rng, 1)).requires_grad_()
    shape = tensor(sample_shape_vectors(rng, 1)).requires_grad_()
    rot = tensor([[1e-9, -2e-9, 0.0]]).requires_grad_()
    trans = tensor([[0.01, -0.02, 0.5]]).requires_grad_()
    inputs = (pose, shape, rot, trans)
    assert torch.autograd.gradcheck(lambda *a: forward_kinematics_torch(*a)[0], inputs)
    subset = torch.arange(0, template_hand().num_vertices, 37)
    assert torch.autograd.gradcheck(lambda *a: skin_hand_torch(*a)[0][:, subset], inputs)
    rotations = tensor(Rotation.random(3, random_state=4).as_rotvec())
    rotations[2] *= (np.pi - 1e-3) / rotations[2].norm()
    assert torch.autograd.gradcheck(
        lambda r: hft._axis_angles(hft._rotation_matrices(r)), rotations.requires_grad_()
    )


# --------------------------------------------------------------------------------------------
# The unrolled fit against the numpy fit.


@pytest.mark.parametrize("handedness", ["right", "left"])
def test_unrolled_fit_reaches_the_numpy_solution(handedness: str) -> None:
    """From perturbed starts (``perturbed``), 1 px noise, a 30 px outlier in one pair of four.

    The reference is the numpy fit run to convergence. Measured (seed 5, max joint error per
    pair, both hands): a start of 0.2 x ``perturbed``'s size, after 3 iterations 0.01-0.20
    mm; a full-size start, after 3 iterations 0.003-1.0 mm without the outlier (3.1-22 mm
    for the outlier pair, which the numpy solver's own 3 iterations leave as far: 3.8 and
    22 mm), after 20 iterations <= 0.3 um; from the numpy solution it stays within 1e-8 m.
    """
    rng = np.random.default_rng(5)
    for rig in RIGS:
        pairs = [make_pair(rng, rig, handedness, outliers=int(i == 0)) for i in range(4)]
        converged = [numpy_fit(pair, TIGHT, init=numpy_fit(pair)) for pair in pairs]
        reference = np.stack([f.joints for f in converged])
        reference_vertices = np.stack([f.vertices for f in converged])
        start = hand_params_from_fits(converged, F64)
        inputs = torch_inputs(pairs)
        for size, pairs_checked, tolerance_mm in (
            (0.2, slice(None), 0.3),
            (1.0, slice(1, None), 1.5),
        ):
            _, joints, _ = fit_hand_torch(
                **inputs,
                init=perturbed(start, seed=10, size=size),
                iterations=3,
                handedness=handedness,
            )
            error = np.abs(joints.numpy() - reference).max(axis=(1, 2))[pairs_checked]
            assert np.all(error * 1e3 < tolerance_mm), (
                f"{rig}, start of size {size}: after 3 iterations the pairs are "
                f"{np.round(error * 1e3, 3)} mm from the converged numpy fit"
            )
        init = perturbed(start, seed=10)
        vertices, joints, _ = fit_hand_torch(
            **inputs, init=init, iterations=20, handedness=handedness
        )
        diff, (i, j, _) = worst(joints.numpy(), reference)
        assert diff < 1e-6, (
            f"{rig}, 20 iterations: joint {JOINT_NAMES[j]} of pair {i} is "
            f"{diff * 1e3:.4f} mm from the numpy fit"
        )
        diff, where = worst(vertices.numpy(), reference_vertices)
        assert diff < 2e-6, f"{rig}, 20 iterations: vertex {where} is {diff} m off"
        # The numpy solution is a fixed point.
        vertices, joints, params = fit_hand_torch(
            **inputs, init=start, iterations=3, handedness=handedness
        )
        diff, _ = worst(joints.numpy(), reference)
        assert diff < 1e-8, f"{rig}: moved {diff} m from the converged numpy fit"
        np.testing.assert_allclose(vertices.numpy(), reference_vertices, atol=1e-8)
        np.testing.assert_allclose(params.pose.numpy(), start.pose.numpy(), atol=1e-6)
        np.testing.assert_allclose(params.trans.numpy(), start.trans.numpy(), atol=1e-8)
        fitted_rot = Rotation.from_rotvec(params.global_rot.numpy()).as_matrix()
        start_rot = Rotation.from_rotvec(start.global_rot.numpy()).as_matrix()
        np.testing.assert_allclose(fitted_rot, start_rot, atol=1e-7)


def test_world_prior_and_huber_match_the_numpy_fit() -> None:
    """The world-landmark prior (gain from the start's depth) and the Huber loss: the numpy
    solution stays put (its gain came from the same start)."""
    rng = np.random.default_rng(6)
    settings = dataclasses.replace(TIGHT, robust_loss="huber", world_prior_weight=0.3)
    pairs = [make_pair(rng, "stb", hand) for hand in ("right", "left")]
    landmarks = []
    first, second = [], []
    for pair in pairs:
        lm = pair.joints - pair.joints[0] + 0.003 * rng.standard_normal((21, 3))
        landmarks.append(lm * 1.3)  # the prior is scale-free
        fit1 = numpy_fit(pair, settings, init=numpy_fit(pair), landmarks=landmarks[-1])
        first.append(fit1)
        second.append(numpy_fit(pair, settings, init=fit1, landmarks=landmarks[-1]))
    _, joints, _ = fit_hand_torch(
        **torch_inputs(pairs),
        init=hand_params_from_fits(first, F64),
        iterations=5,
        settings=settings,
        handedness=[p.handedness for p in pairs],
        world_landmarks=tensor(landmarks),
    )
    diff, where = worst(joints.numpy(), np.stack([f.joints for f in second]))
    assert diff < 1e-7, f"largest difference {diff} m at {where}"


def test_fixed_shape_is_held_and_reaches_the_numpy_fit() -> None:
    """A per-user calibration (``FitSettings.fixed_shape``, here each pair's true shape): the
    torch fit replaces the start's shape by it, never steps it, and converges to the numpy fit
    with the same setting (same cost) from a perturbed start. (Measured: 1e-9 m after 20
    iterations. With a shape that is not the pair's the valley is flat and both solvers
    crawl: the numpy fit itself still moves 0.08 mm when restarted.)"""
    rng = np.random.default_rng(8)
    for pair in [make_pair(rng, "stb", hand) for hand in ("right", "left")]:
        held = tuple(float(v) for v in pair.truth.shape)
        settings = dataclasses.replace(TIGHT, fixed_shape=held)
        converged = numpy_fit(pair, settings, init=numpy_fit(pair, settings))
        np.testing.assert_array_equal(converged.shape, held)
        start = perturbed(hand_params_from_fits([converged], F64), seed=3)
        assert not np.allclose(start.shape.numpy(), held)  # the setting must replace it
        _, joints, params = fit_hand_torch(
            **torch_inputs([pair]),
            init=start,
            iterations=20,
            settings=settings,
            handedness=pair.handedness,
        )
        np.testing.assert_array_equal(params.shape.numpy()[0], held)
        diff, (_, j, _) = worst(joints.numpy()[0:1], converged.joints[None])
        assert diff < 1e-7, (
            f"{pair.handedness}: joint {JOINT_NAMES[j]} is {diff * 1e3:.5f} mm from the numpy "
            "fit with the same fixed shape"
        )


def test_a_batch_fits_as_its_pairs_one_by_one() -> None:
    rng = np.random.default_rng(7)
    pairs = [make_pair(rng, rig, hand) for rig, hand in (("stb", "left"), ("tabletop", "right"))]
    fits = [numpy_fit(p) for p in pairs]
    init = perturbed(hand_params_from_fits(fits, F64), seed=1)
    hands = [p.handedness for p in pairs]
    _, batched, _ = fit_hand_torch(**torch_inputs(pairs), init=init, handedness=hands)
    for i, pair in enumerate(pairs):
        one = HandParams(*(getattr(init, f.name)[i : i + 1] for f in dataclasses.fields(init)))
        _, alone, _ = fit_hand_torch(**torch_inputs([pair]), init=one, handedness=hands[i])
        diff, _ = worst(alone[0].numpy(), batched[i].numpy())
        assert diff < 1e-12, f"pair {i}: batched and alone differ by {diff} m"


# --------------------------------------------------------------------------------------------
# Gradients.


def _gradcheck_case(
    rng: np.random.Generator, handedness: str, noise_px: float
) -> tuple[Pair, HandFit]:
    pair = make_pair(rng, "stb", handedness, noise_px=noise_px)
    return pair, numpy_fit(pair, TIGHT, init=numpy_fit(pair))


def test_gradcheck_joints_wrt_keypoints_huber_with_priors() -> None:
    """Huber loss with every keypoint inside its scale (weights exactly 1, so the detached
    IRLS weights hide nothing), pose, shape and world priors, a left hand, partial weights,
    a perturbed start, 2 iterations."""
    rng = np.random.default_rng(8)
    settings = FitSettings(robust_loss="huber", world_prior_weight=0.2)
    pair, fit = _gradcheck_case(rng, "left", noise_px=0.5)
    pair = dataclasses.replace(pair, weights=rng.uniform(0.5, 1.0, size=(2, 21)))
    inputs = torch_inputs([pair])
    init = perturbed(hand_params_from_fits([fit], F64), seed=2, size=0.05)
    landmarks = tensor((pair.joints - pair.joints[0])[None])

    def joints_of(uv_left: torch.Tensor, uv_right: torch.Tensor) -> torch.Tensor:
        args = {**inputs, "uv_left": uv_left, "uv_right": uv_right}
        return fit_hand_torch(
            **args,
            init=init,
            iterations=2,
            settings=settings,
            handedness="left",
            world_landmarks=landmarks,
        )[1]

    start = forward_kinematics_torch(init.pose, init.shape, init.global_rot, init.trans)[0]
    start_uv = project(mirror_joints_to_left(start[0].numpy()), "stb")
    errors = np.linalg.norm(np.stack(start_uv) - [pair.uv_left, pair.uv_right], axis=-1)
    assert errors.max() < 0.75 * settings.robust_scale_px, "the start leaves Huber's core"
    uv = (inputs["uv_left"].requires_grad_(), inputs["uv_right"].requires_grad_())
    assert torch.autograd.gradcheck(joints_of, uv, atol=1e-6)


def test_gradcheck_joints_wrt_keypoints_cauchy_at_the_solution() -> None:
    """Cauchy loss on exact keypoints, no priors, a start 1e-3 of ``perturbed``'s size from
    the true parameters (residuals about 0.01 px): the IRLS weights' derivatives, which the
    fit detaches, vanish with the residuals, so autograd must match finite differences."""
    rng = np.random.default_rng(9)
    pair = make_pair(rng, "tabletop", "right", noise_px=0.0)
    inputs = torch_inputs([pair])
    init = perturbed(hand_params_from_fits([pair.truth], F64), seed=3, size=1e-3)

    def joints_of(uv_left: torch.Tensor, uv_right: torch.Tensor) -> torch.Tensor:
        args = {**inputs, "uv_left": uv_left, "uv_right": uv_right}
        return fit_hand_torch(**args, init=init, iterations=2, settings=NO_PRIORS)[1]

    uv = (inputs["uv_left"].requires_grad_(), inputs["uv_right"].requires_grad_())
    assert torch.autograd.gradcheck(joints_of, uv, atol=1e-6)


def test_gradients_reach_the_keypoints(device: torch.device) -> None:
    """float32 on the device: finite, non-zero gradients for every pair and every weighted
    keypoint; none for a keypoint of weight 0 (it does not enter the fit)."""
    rng = np.random.default_rng(10)
    pairs = [make_pair(rng, rig, hand, outliers=1) for rig in RIGS for hand in ("right", "left")]
    pairs[0].weights[1, 12] = 0.0
    fits = [numpy_fit(p) for p in pairs]
    inputs = torch_inputs(pairs, device, torch.float32)
    uv_left = inputs["uv_left"].requires_grad_()
    uv_right = inputs["uv_right"].requires_grad_()
    vertices, joints, _ = fit_hand_torch(
        **inputs,
        init=hand_params_from_fits(fits, torch.float32, device),
        handedness=[p.handedness for p in pairs],
    )
    assert vertices.device.type == device.type and vertices.dtype == torch.float32
    assert vertices.shape == (4, template_hand().num_vertices, 3) and joints.shape == (4, 21, 3)
    (vertices[..., 2].mean() + joints[:, 8].sum()).backward()
    for name, grad in (("uv_left", uv_left.grad), ("uv_right", uv_right.grad)):
        assert grad is not None and torch.isfinite(grad).all(), name
        per_pair = grad.abs().flatten(1).amax(1)
        assert (per_pair > 1e-9).all(), f"{name}: a pair got no gradient: {per_pair}"
    assert uv_right.grad[0, 12].abs().max() == 0.0
    assert uv_left.grad[0, 12].abs().max() > 0.0
    # The float32 fit agrees with float64's.
    _, joints64, _ = fit_hand_torch(
        **torch_inputs(pairs, device),
        init=hand_params_from_fits(fits, F64, device),
        handedness=[p.handedness for p in pairs],
    )
    assert (joints.detach().double() - joints64).abs().max() < 2e-5  # metres


# --------------------------------------------------------------------------------------------
# Bad inputs.


@pytest.fixture(scope="module")
def good() -> tuple[dict[str, torch.Tensor], HandParams]:
    rng = np.random.default_rng(11)
    pairs = [make_pair(rng, "stb") for _ in range(2)]
    return torch_inputs(pairs), hand_params_from_fits([p.truth for p in pairs], F64)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("uv_left", torch.zeros(2, 20, 2, dtype=F64)),
        ("uv_left", torch.zeros(21, 2, dtype=F64)),
        ("uv_left", np.zeros((2, 21, 2))),
        ("uv_right", torch.zeros(3, 21, 2, dtype=F64)),
        ("uv_right", torch.zeros(2, 21, 2, dtype=torch.float32)),
        ("k_left", torch.ones(2, 3, dtype=F64)),
        ("k_right", torch.ones(2, 4, dtype=torch.int64)),
        ("baseline_m", torch.ones(2, 1, dtype=F64)),
        ("weights", torch.ones(2, 21, 2, dtype=F64)),
        ("weights", torch.full((2, 2, 21), 1.5, dtype=F64)),
        ("uv_left", torch.full((2, 21, 2), float("nan"), dtype=F64)),
        ("world_landmarks", torch.zeros(2, 21, 2, dtype=F64)),
        ("world_landmarks", torch.zeros(2, 21, 3, dtype=F64)),
        ("pose", torch.zeros(2, 25, dtype=F64)),
        ("shape", torch.ones(1, 9, dtype=F64)),
        ("global_rot", torch.zeros(2, 4, dtype=F64)),
        ("trans", torch.zeros(2, 3, dtype=torch.float32)),
    ],
)
def test_bad_shapes_raise_shape_error(
    good: tuple[dict[str, torch.Tensor], HandParams], name: str, value: object
) -> None:
    inputs, init = good
    kwargs: dict[str, object] = {**inputs, "init": init}
    if name in ("pose", "shape", "global_rot", "trans"):
        kwargs["init"] = dataclasses.replace(init, **{name: value})
    else:
        kwargs[name] = value
    with pytest.raises(ShapeError, match=name):
        fit_hand_torch(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.zeros(2, 26), torch.ones(2, 8), torch.zeros(2, 3), torch.zeros(2, 3)), "shape"),
        ((torch.zeros(2, 26), torch.ones(2, 9), torch.zeros(3, 3), torch.zeros(2, 3)), "rot"),
        ((torch.zeros(26), torch.ones(9), torch.zeros(3), torch.zeros(3)), "pose"),
        ((torch.zeros(0, 26), torch.ones(0, 9), torch.zeros(0, 3), torch.zeros(0, 3)), "pose"),
        ((np.zeros((2, 26)), torch.ones(2, 9), torch.zeros(2, 3), torch.zeros(2, 3)), "pose"),
    ],
)
def test_kinematics_bad_shapes_raise_shape_error(args: tuple, message: str) -> None:
    for function in (forward_kinematics_torch, skin_hand_torch):
        with pytest.raises(ShapeError, match=message):
            function(*args)


def test_bad_settings_raise_config_or_fit_error(
    good: tuple[dict[str, torch.Tensor], HandParams],
) -> None:
    inputs, init = good
    for kwargs in (
        {"iterations": 0},
        {"iterations": 2.0},
        {"handedness": "both"},
        {"handedness": ["right"]},
        {"settings": "fast"},
        {"init": "numpy fit"},
        {"weights": torch.zeros(2, 2, 21, dtype=F64)},
        {"baseline_m": torch.tensor([0.12, -0.12], dtype=F64)},
        {"k_right": torch.tensor([[822.8, 0.0, 318.5, 250.3]] * 2, dtype=F64)},
    ):
        with pytest.raises(ConfigError):
            fit_hand_torch(**{**inputs, "init": init, **kwargs})  # type: ignore[arg-type]
    behind = dataclasses.replace(init, trans=init.trans * torch.tensor([1.0, 1.0, -1.0]))
    with pytest.raises(FitError, match="in front of the cameras"):
        fit_hand_torch(**inputs, init=behind)
    with pytest.raises(ConfigError, match="HandFit"):
        hand_params_from_fits([])
