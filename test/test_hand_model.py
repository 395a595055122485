"""The hand model: forward pass, pose and shape semantics, skinning, regressor, mirroring."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.hand import (
    GESTURES,
    NUM_POSE_PARAMS,
    NUM_SHAPE_PARAMS,
    POSE_LIMITS,
    POSE_PARAM_NAMES,
    SHAPE_LIMITS,
    SHAPE_PARAM_NAMES,
    HandModelLike,
    HandOutput,
    HandShape,
    clip_pose,
    gesture_pose,
    mirror_joints_to_left,
    mirror_to_left,
    pose_from_dict,
    pose_index,
    sample_pose,
    sample_shape,
    sample_shape_vectors,
    signed_volume,
    template_hand,
)
from stereo_hand_mesh.hand.joints import FINGERS, JOINT_NAMES
from stereo_hand_mesh.hand.regressor import regressor_training_set
from stereo_hand_mesh.hand.skeleton import BONE_NAMES, axis_angle_to_matrix


@pytest.fixture(scope="module")
def hand():
    return template_hand()


def _j(name: str) -> int:
    return JOINT_NAMES.index(name)


def _pose(**angles: float) -> np.ndarray:
    return pose_from_dict(angles)[None]


def _bone(name: str) -> int:
    return BONE_NAMES.index(name)


def _distal_part(hand, joint: str, threshold: float = 1.0 - 1e-12) -> np.ndarray:
    """(V,) vertices moved rigidly by ``joint`` alone: all their weight is on its bone and
    the bones distal to it (same digit, later joints)."""
    b = _bone(joint)
    digit = joint.split("_")[0]
    distal = [k for k, n in enumerate(BONE_NAMES) if n.startswith(digit) and k >= b]
    return hand.skin_weights[:, distal].sum(axis=1) > threshold


# --------------------------------------------------------------------------- interface


def test_interface_attributes(hand):
    v, f = hand.num_vertices, hand.num_faces
    assert hand.template_vertices.shape == (v, 3)
    assert hand.faces.shape == (f, 3) and hand.faces.dtype == np.int64
    assert hand.joint_regressor.shape == (21, v)
    assert hand.skin_weights.shape == (v, 16)
    assert hand.edges.shape[1] == 2 and len(np.unique(hand.edges, axis=0)) == len(hand.edges)
    assert isinstance(hand.topology_hash, str) and len(hand.topology_hash) == 16
    assert hand.num_pose_params == NUM_POSE_PARAMS == len(POSE_PARAM_NAMES) == 26
    assert hand.num_shape_params == NUM_SHAPE_PARAMS == len(SHAPE_PARAM_NAMES) == 9
    assert POSE_LIMITS.shape == (2, NUM_POSE_PARAMS) and np.all(POSE_LIMITS[0] < POSE_LIMITS[1])
    assert template_hand() is hand  # cached
    assert isinstance(hand, HandModelLike)
    with pytest.raises(ValueError):
        hand.template_vertices[0, 0] = 1.0  # read-only


def test_pose_helpers_reject_unknown_names():
    with pytest.raises(ConfigError, match="pose parameter expected one of"):
        pose_index("index_mcp_bend")
    with pytest.raises(ConfigError, match="pose parameter expected one of"):
        pose_from_dict({"wrist_flex": 0.1})
    assert pose_from_dict({"ring_pip_flex": 0.3})[pose_index("ring_pip_flex")] == 0.3
    with pytest.raises(ConfigError):
        sample_pose(np.random.default_rng(0), -1)


def test_pose_parameter_names():
    expected = {
        "thumb_cmc_flex", "thumb_cmc_abd", "thumb_cmc_twist", "thumb_mcp_flex",
        "thumb_mcp_abd", "thumb_ip_flex",
    }  # fmt: skip
    for finger in FINGERS[1:]:
        expected |= {f"{finger}_{k}" for k in ("mcp_flex", "mcp_abd", "mcp_twist", "pip_flex",
                                               "dip_flex")}  # fmt: skip
    assert set(POSE_PARAM_NAMES) == expected and len(POSE_PARAM_NAMES) == len(expected)


def test_forward_shapes_and_rest(hand):
    out = hand.forward(np.zeros((3, NUM_POSE_PARAMS)))
    assert isinstance(out, HandOutput)
    assert out.vertices.shape == (3, hand.num_vertices, 3)
    assert out.joints.shape == (3, 21, 3) and out.skeleton.shape == (3, 21, 3)
    np.testing.assert_allclose(out.vertices[1], hand.template_vertices, atol=1e-12)
    np.testing.assert_allclose(out.skeleton[2], hand.rest_joints, atol=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.joints = out.skeleton


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"pose": np.zeros(26)}, ShapeError, "pose expected shape (B, 26)"),
        ({"pose": np.zeros((2, 25))}, ShapeError, "got (2, 25)"),
        ({"pose": [[0.0] * 26]}, ShapeError, "pose expected a numpy array"),
        ({"pose": np.full((1, 26), np.nan)}, ShapeError, "finite"),
        ({"pose": np.zeros((2, 26)), "global_rot": np.zeros((2, 4))}, ShapeError, "global_rot"),
        ({"pose": np.zeros((2, 26)), "trans": np.zeros((3, 3))}, ShapeError, "trans"),
        ({"pose": np.zeros((2, 26)), "shape": np.ones((2, 8))}, ShapeError, "shape"),
        ({"pose": np.zeros((2, 26)), "shape": np.full((2, 9), 1.5)}, ConfigError, "scale"),
        ({"pose": np.zeros((1, 26)), "shape": [1.0] * 9}, ShapeError, "shape expected"),
    ],
)
def test_forward_rejects_bad_inputs(hand, kwargs, error, text):
    with pytest.raises(error, match=None) as info:
        hand.forward(**kwargs)
    assert text in str(info.value), str(info.value)


def test_global_rotation_and_translation_are_rigid(hand):
    rng = np.random.default_rng(3)
    pose = sample_pose(rng, 4)
    rot = rng.normal(size=(4, 3))
    trans = rng.normal(size=(4, 3))
    base = hand.forward(pose)
    moved = hand.forward(pose, global_rot=rot, trans=trans)
    r = axis_angle_to_matrix(rot)
    for name in ("vertices", "joints", "skeleton"):
        want = np.einsum("bij,bvj->bvi", r, getattr(base, name)) + trans[:, None]
        np.testing.assert_allclose(getattr(moved, name), want, atol=1e-12)
    np.testing.assert_allclose(moved.skeleton[:, 0], trans, atol=1e-12)  # wrist at trans


# ------------------------------------------------------------------------ pose semantics


def _flex_children(name: str) -> list[int]:
    """Joints distal to the joint a flexion parameter acts on."""
    joint = name.rsplit("_", 1)[0]
    j = _j(joint)
    finger_end = (j - 1) // 4 * 4 + 4
    return list(range(j + 1, finger_end + 1))


@pytest.mark.parametrize("name", [n for n in POSE_PARAM_NAMES if n.endswith("_flex")])
def test_flexion_bends_towards_the_palm(hand, name):
    rest = hand.forward(np.zeros((1, NUM_POSE_PARAMS)))
    bent = hand.forward(_pose(**{name: 0.5}))
    for j in _flex_children(name):
        moved = bent.skeleton[0, j] - rest.skeleton[0, j]
        # Towards the palm side: the palm normal is +z in the hand frame.
        assert moved[2] > 0.003, (name, JOINT_NAMES[j], moved)
    # The mesh follows: the part distal to the joint moves palmwards on average.
    part = _distal_part(hand, name.rsplit("_", 1)[0], threshold=0.99)
    assert part.sum() >= 5
    dz = bent.vertices[0, part, 2] - rest.vertices[0, part, 2]
    assert dz.mean() > 0.003
    # Joints proximal to the bent joint stay put.
    keep = [k for k in range(21) if k not in _flex_children(name)]
    np.testing.assert_allclose(bent.skeleton[0, keep], rest.skeleton[0, keep], atol=1e-12)


@pytest.mark.parametrize("finger", FINGERS[1:])
def test_abduction_spreads_within_the_palm_plane(hand, finger):
    rest = hand.forward(np.zeros((1, NUM_POSE_PARAMS))).skeleton[0]
    spread = hand.forward(_pose(**{f"{finger}_mcp_abd": 0.2})).skeleton[0]
    tip = _j(f"{finger}_tip")
    moved = spread[tip] - rest[tip]
    assert abs(moved[2]) < 1e-12  # stays in the palm plane (fingers rest in it)
    # Positive = away from the middle finger (index and middle towards the thumb, +x).
    side = 1.0 if finger in ("index", "middle") else -1.0
    assert side * moved[0] > 0.01, moved
    np.testing.assert_allclose(np.linalg.norm(spread[tip] - spread[tip - 3]),
                               np.linalg.norm(rest[tip] - rest[tip - 3]))  # fmt: skip


def test_thumb_abduction_moves_away_from_fingers(hand):
    rest = hand.forward(np.zeros((1, NUM_POSE_PARAMS))).skeleton[0]
    for name in ("thumb_cmc_abd", "thumb_mcp_abd"):
        moved = hand.forward(_pose(**{name: 0.2})).skeleton[0, _j("thumb_tip")]
        away = moved - rest[_j("thumb_tip")]
        assert away[0] > 0.003, (name, away)  # radially, away from the index finger


def _rotation_about_axis(before, after, origin, axis):
    """Angle of rotation about an axis of points, and how much their axial/radial parts changed."""
    axis = axis / np.linalg.norm(axis)
    rb, ra = before - origin, after - origin
    axial_b, axial_a = rb @ axis, ra @ axis
    perp_b = rb - axial_b[:, None] * axis
    perp_a = ra - axial_a[:, None] * axis
    cross = np.cross(perp_b, perp_a) @ axis
    angle = np.arctan2(cross, np.sum(perp_b * perp_a, axis=1))
    radial = np.linalg.norm(perp_a, axis=1) - np.linalg.norm(perp_b, axis=1)
    return angle, axial_a - axial_b, radial


@pytest.mark.parametrize("joint", ["index_mcp", "middle_mcp", "ring_mcp", "little_mcp",
                                   "thumb_cmc"])  # fmt: skip
def test_twist_rotates_about_the_bone_axis(hand, joint):
    name = f"{joint}_twist"
    rest = hand.forward(np.zeros((1, NUM_POSE_PARAMS)))
    twisted = hand.forward(_pose(**{name: 0.12}))
    j = _j(joint)
    origin, child = hand.rest_joints[j], hand.rest_joints[j + 1]
    part = _distal_part(hand, joint)
    assert part.sum() >= 5
    angle, axial, radial = _rotation_about_axis(
        rest.vertices[0, part], twisted.vertices[0, part], origin, child - origin
    )
    sign = -1.0 if joint == "thumb_cmc" else 1.0  # thumb: positive pronates
    np.testing.assert_allclose(angle, sign * 0.12, atol=1e-9)
    np.testing.assert_allclose(axial, 0.0, atol=1e-12)
    np.testing.assert_allclose(radial, 0.0, atol=1e-12)
    # The child joint is on the axis.
    np.testing.assert_allclose(twisted.skeleton[0, j + 1], rest.skeleton[0, j + 1], atol=1e-12)


def test_clip_pose_respects_limits():
    rng = np.random.default_rng(0)
    wild = rng.uniform(-5, 5, (50, NUM_POSE_PARAMS))
    clipped = clip_pose(wild)
    assert np.all(clipped >= POSE_LIMITS[0]) and np.all(clipped <= POSE_LIMITS[1])
    inside = sample_pose(rng, 20)
    np.testing.assert_array_equal(clip_pose(inside), inside)
    assert np.all(inside >= POSE_LIMITS[0]) and np.all(inside <= POSE_LIMITS[1])
    uniform = sample_pose(rng, 20, uniform=True)
    assert np.all(uniform >= POSE_LIMITS[0]) and np.all(uniform <= POSE_LIMITS[1])
    with pytest.raises(ShapeError):
        clip_pose(np.zeros(5))


def test_gestures(hand):
    names = {"flat", "relaxed", "fist", "point", "pinch", "spread"}
    assert names | {f"count_{k}" for k in range(1, 6)} == set(GESTURES)
    for pose in GESTURES.values():
        assert pose.shape == (NUM_POSE_PARAMS,)
        np.testing.assert_array_equal(clip_pose(pose), pose)
    rng = np.random.default_rng(1)
    jittered = gesture_pose("fist", rng, jitter=0.1)
    assert 0 < np.abs(jittered - GESTURES["fist"]).max() < 0.6
    np.testing.assert_array_equal(gesture_pose("fist"), GESTURES["fist"])
    with pytest.raises(ConfigError, match="gesture expected one of"):
        gesture_pose("wave")
    with pytest.raises(ConfigError):
        gesture_pose("fist", None, jitter=0.1)
    out = hand.forward(np.stack([GESTURES[n] for n in ("fist", "pinch", "spread", "point")]))
    j = out.joints
    tip, mcp = _j("index_tip"), _j("index_mcp")
    # Fist: every fingertip is back near the palm; pinch: thumb and index tips meet.
    for finger in FINGERS[1:]:
        assert j[0, _j(f"{finger}_tip"), 1] < j[0, _j(f"{finger}_mcp"), 1] + 0.02
    assert np.linalg.norm(j[1, _j("thumb_tip")] - j[1, tip]) < 0.025
    assert np.linalg.norm(j[2, tip] - j[2, _j("little_tip")]) > 0.11
    assert j[3, tip, 1] - j[3, mcp, 1] > 0.08  # the pointing index is straight


# ----------------------------------------------------------------------------- shape


def test_hand_shape_dataclass():
    shape = HandShape()
    assert shape.to_vector().shape == (NUM_SHAPE_PARAMS,)
    np.testing.assert_array_equal(shape.to_vector(), np.ones(NUM_SHAPE_PARAMS))
    other = HandShape(scale=1.1, middle_length=0.9)
    assert HandShape.from_vector(other.to_vector()) == other
    with pytest.raises(dataclasses.FrozenInstanceError):
        other.scale = 1.0
    with pytest.raises(ConfigError, match=r"HandShape.scale expected a value in \[0.8, 1.2\]"):
        HandShape(scale=1.3)
    with pytest.raises(ShapeError):
        HandShape.from_vector(np.ones(3))
    rng = np.random.default_rng(0)
    vecs = sample_shape_vectors(rng, 100)
    assert np.all(vecs >= SHAPE_LIMITS[0]) and np.all(vecs <= SHAPE_LIMITS[1])
    assert np.ptp(vecs[:, 0]) > 0.3  # overall scale spans its range
    assert isinstance(sample_shape(rng), HandShape)


def test_overall_scale_scales_the_hand(hand):
    rng = np.random.default_rng(5)
    pose = sample_pose(rng, 3)
    base = hand.forward(pose)
    big = hand.forward(pose, shape=HandShape(scale=1.2))
    np.testing.assert_allclose(big.vertices, 1.2 * base.vertices, atol=1e-12)
    np.testing.assert_allclose(big.joints, 1.2 * base.joints, atol=1e-12)
    length = np.linalg.norm(big.skeleton[:, _j("middle_tip")] - big.skeleton[:, 0], axis=1)
    np.testing.assert_allclose(length, 1.2 * np.linalg.norm(base.skeleton[:, 12], axis=1))


def _bone_lengths(skeleton: np.ndarray, finger: str) -> np.ndarray:
    first = _j(f"{finger}_cmc" if finger == "thumb" else f"{finger}_mcp")
    chain = skeleton[..., first : first + 4, :]
    return np.linalg.norm(np.diff(chain, axis=-2), axis=-1)


@pytest.mark.parametrize("finger", FINGERS)
def test_finger_length_scales_that_finger_only(hand, finger):
    zero = np.zeros((1, NUM_POSE_PARAMS))
    base = hand.forward(zero)
    longer = hand.forward(zero, shape=HandShape(**{f"{finger}_length": 1.1}))
    np.testing.assert_allclose(
        _bone_lengths(longer.skeleton, finger), 1.1 * _bone_lengths(base.skeleton, finger)
    )
    # The mesh follows: the digit's tip vertex moves out by ~10% of the digit's length.
    tip = _j(f"{finger}_tip")
    k = int(np.argmin(np.linalg.norm(hand.template_vertices - hand.rest_joints[tip], axis=1)))
    start = tip - 3  # the digit's first joint (MCP, or CMC for the thumb)
    reach = np.linalg.norm(base.vertices[0, k] - base.skeleton[0, start])
    grown = np.linalg.norm(longer.vertices[0, k] - longer.skeleton[0, start])
    assert 1.08 < grown / reach < 1.12
    np.testing.assert_allclose(longer.joints[0, tip], longer.skeleton[0, tip], atol=1.5e-3)
    others = [f for f in FINGERS if f != finger]
    for other in others:
        o = _j(f"{other}_tip")
        np.testing.assert_allclose(longer.skeleton[0, o], base.skeleton[0, o], atol=1e-12)


def test_palm_width_and_length(hand):
    zero = np.zeros((1, NUM_POSE_PARAMS))
    base = hand.forward(zero).skeleton[0]
    wide = hand.forward(zero, shape=HandShape(palm_width=1.1)).skeleton[0]
    long_ = hand.forward(zero, shape=HandShape(palm_length=1.1)).skeleton[0]
    i, m, l_ = _j("index_mcp"), _j("middle_mcp"), _j("little_mcp")
    np.testing.assert_allclose(wide[i, 0] - wide[l_, 0], 1.1 * (base[i, 0] - base[l_, 0]))
    np.testing.assert_allclose(long_[m, 1], 1.1 * base[m, 1])
    np.testing.assert_allclose(_bone_lengths(wide, "index"), _bone_lengths(base[None], "index")[0])


def test_finger_thickness(hand):
    zero = np.zeros((1, NUM_POSE_PARAMS))
    thick = hand.forward(zero, shape=HandShape(finger_thickness=1.2)).vertices[0]
    part = hand.skin_weights[:, _bone("middle_pip")] > 0.999
    a, b = hand.rest_joints[_j("middle_pip")], hand.rest_joints[_j("middle_dip")]
    axis = (b - a) / np.linalg.norm(b - a)

    def radius(v):
        r = v[part] - a
        return np.linalg.norm(r - (r @ axis)[:, None] * axis, axis=1)

    np.testing.assert_allclose(radius(thick), 1.2 * radius(hand.template_vertices))


def test_batched_shapes_match_single(hand):
    rng = np.random.default_rng(2)
    pose = sample_pose(rng, 4)
    shapes = sample_shape_vectors(rng, 4)
    batched = hand.forward(pose, shape=shapes)
    for b in range(4):
        single = hand.forward(pose[b : b + 1], shape=HandShape.from_vector(shapes[b]))
        np.testing.assert_allclose(batched.vertices[b], single.vertices[0], atol=1e-12)


# ------------------------------------------------------------ skinning and the regressor


def test_skin_weights(hand):
    w = hand.skin_weights
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    for finger in FINGERS:
        tip = _j(f"{finger}_tip")
        near = np.linalg.norm(hand.template_vertices - hand.rest_joints[tip], axis=1) < 0.006
        distal = _bone(f"{finger}_{'ip' if finger == 'thumb' else 'dip'}")
        assert np.all(w[near, distal] > 0.999), finger
    # Distal phalanges share no weights with other digits (only the webs mix digits).
    for finger in FINGERS:
        distal = [b for b, n in enumerate(BONE_NAMES) if n.startswith(finger)][-1:]
        others = [b for b, n in enumerate(BONE_NAMES) if n.split("_")[0] in FINGERS
                  and not n.startswith(finger)]  # fmt: skip
        on_distal = w[:, distal].sum(axis=1) > 0
        assert np.all(w[on_distal][:, others] == 0), finger


def test_joint_regressor_structure(hand):
    r = hand.joint_regressor
    assert np.all(r >= 0)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, atol=1e-12)
    nonzero = (r > 0).sum(axis=1)
    assert np.all(nonzero >= 1) and np.all(nonzero <= 24)
    out = hand.forward(np.zeros((1, NUM_POSE_PARAMS)))
    np.testing.assert_allclose(out.joints[0], hand.rest_joints, atol=1e-3)


def test_joint_regressor_accuracy_on_posed_hands(hand):
    """Regressed joints vs the skeleton on unseen poses and shapes (reported in mm)."""
    vertices, skeleton = regressor_training_set(hand, seed=1234, n_poses=200)
    regressed = hand.joint_regressor @ vertices
    err_mm = 1000.0 * np.linalg.norm(regressed - skeleton, axis=-1)
    worst = np.unravel_index(np.argmax(err_mm), err_mm.shape)
    assert err_mm.mean() < 0.5, err_mm.mean()
    assert err_mm.max() < 2.0, (err_mm.max(), JOINT_NAMES[worst[1]])
    rest_mm = 1000.0 * np.linalg.norm(hand.joint_regressor @ hand.template_vertices
                                      - hand.rest_joints, axis=-1)  # fmt: skip
    assert rest_mm.max() < 1.0


# ----------------------------------------------------------------------------- mirroring


def test_mirror_to_left(hand):
    out = hand.forward(GESTURES["pinch"][None], trans=np.array([[0.05, -0.02, 0.5]]))
    left, faces = mirror_to_left(out.vertices, hand.faces)
    assert left.shape == out.vertices.shape
    np.testing.assert_array_equal(left[..., 0], -out.vertices[..., 0])
    np.testing.assert_array_equal(left[..., 1:], out.vertices[..., 1:])
    # Orientation stays outward: the volume is unchanged and positive.
    volume = signed_volume(out.vertices[0], hand.faces)
    np.testing.assert_allclose(signed_volume(left[0], faces), volume)
    assert signed_volume(left[0], faces) > 0
    assert signed_volume(left[0], hand.faces) < 0  # without the flip it would be inverted
    # Same undirected edges; each face keeps its vertices.
    np.testing.assert_array_equal(np.sort(faces, axis=1), np.sort(hand.faces, axis=1))
    # A left hand: in the hand frame the thumb now points to -x.
    rest_left, _ = mirror_to_left(hand.template_vertices, hand.faces)
    thumb = hand.skin_weights[:, _bone("thumb_ip")] > 0.99
    assert rest_left[thumb, 0].mean() < -0.05
    joints_left = mirror_joints_to_left(out.joints)
    np.testing.assert_array_equal(joints_left[..., 0], -out.joints[..., 0])
