"""The output messages of ``hand_mesh_node``, built from a pipeline estimate, one hand at a time.

Every builder takes the left image's header and copies its stamp and frame_id into the
output. Positions are metres in that (left optical) frame. Each hand has a side (``right`` or
``left``, :data:`~stereo_hand_mesh.pipeline.estimator.SIDES`), and its outputs carry it:

* ``hand/<side>/joints``: geometry_msgs/PoseArray, the 21 joints in
  :data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES` order, each with its joint frame's
  orientation (identity where the estimate has none: the legacy mesh-uv models).
* ``hand/<side>/vertices``: sensor_msgs/PointCloud2, one point per mesh vertex, fields ``x``,
  ``y``, ``z``, ``confidence`` (float32, little-endian, point_step 16, unorganized: height 1).
* ``/tf``: one TransformStamped per joint (child ``<prefix><side>_<joint_name>``, rotated by
  the fitted skeleton: x along the bone toward the fingertip, z toward the palmar side,
  y = z x x; see :mod:`stereo_hand_mesh.pipeline.fit`) and one palm frame
  (child ``<prefix><side>_palm``, origin at the palm centre, axes of
  :func:`~stereo_hand_mesh.hand.joints.palm_frame`). The node sends both hands' transforms
  of a pair in one TFMessage.
* ``hand/<side>/markers``: visualization_msgs/MarkerArray in namespaces ``<side>_mesh``
  (TRIANGLE_LIST), ``<side>_joints`` (SPHERE_LIST) and ``<side>_skeleton`` (LINE_LIST), in
  colours of their side (:data:`SIDE_COLOURS`); one DELETEALL marker clears them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.joints import JOINT_NAMES, JOINT_PARENTS, palm_frame
from stereo_hand_mesh.pipeline.estimator import SIDES

__all__ = [
    "MARKER_KINDS",
    "PALM_FRAME_SUFFIX",
    "SIDE_COLOURS",
    "OutputMessages",
    "build_outputs",
    "delete_markers_msg",
    "joint_frame_names",
    "marker_array_msg",
    "marker_namespaces",
    "point_cloud_msg",
    "pose_array_msg",
    "quaternion_from_matrix",
    "transforms_msgs",
]

PALM_FRAME_SUFFIX = "palm"
#: The markers of one hand, in message order (namespace ``<side>_<kind>``).
MARKER_KINDS = ("mesh", "joints", "skeleton")
#: RGBA of each side's (mesh, joint spheres, skeleton lines): a right hand in warm skin, red
#: joints and green bones; a left hand in cool skin, blue joints and yellow bones.
SIDE_COLOURS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "right": ((0.95, 0.75, 0.62, 0.85), (1.0, 0.1, 0.1, 1.0), (0.1, 0.9, 0.2, 1.0)),
    "left": ((0.62, 0.78, 0.95, 0.85), (0.15, 0.35, 1.0, 1.0), (1.0, 0.85, 0.1, 1.0)),
}
_BONES = np.array([(j, p) for j, p in enumerate(JOINT_PARENTS) if p >= 0], dtype=np.int64)


def _check_side(side: str) -> str:
    if side not in SIDES:
        raise ConfigError(f"hand side expected one of {SIDES}; got {side!r}")
    return side


def joint_frame_names(prefix: str, side: str) -> list[str]:
    """TF child frame names of one hand: ``<prefix><side>_<joint_name>`` for the 21 joints,
    then ``<prefix><side>_palm``.

    Raises:
        ConfigError: ``side`` is neither ``"right"`` nor ``"left"``.
    """
    stem = f"{prefix}{_check_side(side)}_"
    return [f"{stem}{name}" for name in JOINT_NAMES] + [f"{stem}{PALM_FRAME_SUFFIX}"]


def marker_namespaces(side: str) -> list[str]:
    """The marker namespaces of one hand: ``<side>_mesh``, ``<side>_joints``,
    ``<side>_skeleton``."""
    return [f"{_check_side(side)}_{kind}" for kind in MARKER_KINDS]


def quaternion_from_matrix(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) unit quaternion of a (3, 3) rotation matrix (w >= 0)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = (s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s)
    arr = np.array(q, dtype=np.float64)
    arr /= np.linalg.norm(arr)
    if arr[3] < 0:
        arr = -arr
    return float(arr[0]), float(arr[1]), float(arr[2]), float(arr[3])


def _quaternions(rotations: np.ndarray | None, count: int) -> list[tuple[float, ...]]:
    """(x, y, z, w) per rotation of (count, 3, 3), identities for None."""
    if rotations is None:
        return [(0.0, 0.0, 0.0, 1.0)] * count
    return [quaternion_from_matrix(r) for r in np.asarray(rotations, np.float64)]


def pose_array_msg(joints: np.ndarray, header: Any, rotations: np.ndarray | None = None) -> Any:
    """geometry_msgs/PoseArray of (21, 3) joints (metres) with their (21, 3, 3) frames'
    orientations (identities when None)."""
    from geometry_msgs.msg import Pose, PoseArray

    msg = PoseArray(header=header)
    poses = []
    quats = _quaternions(rotations, len(joints))
    for (x, y, z), q in zip(np.asarray(joints, dtype=np.float64).tolist(), quats, strict=True):
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = x, y, z
        o = pose.orientation
        o.x, o.y, o.z, o.w = q
        poses.append(pose)
    msg.poses = poses
    return msg


def point_cloud_msg(vertices: np.ndarray, confidence: np.ndarray, header: Any) -> Any:
    """sensor_msgs/PointCloud2 of (V, 3) vertices (metres) with a (V,) confidence field."""
    from sensor_msgs.msg import PointCloud2, PointField

    v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    c = np.asarray(confidence, dtype=np.float32).reshape(-1, 1)
    if c.shape[0] != v.shape[0]:
        raise ValueError(f"confidence expected {v.shape[0]} values; got {c.shape[0]}")
    data = np.ascontiguousarray(np.hstack([v, c]).astype("<f4"))
    msg = PointCloud2(header=header)
    msg.height, msg.width = 1, int(v.shape[0])
    msg.fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, name in enumerate(("x", "y", "z", "confidence"))
    ]
    msg.is_bigendian = False
    msg.point_step = 16
    msg.row_step = 16 * int(v.shape[0])
    msg.is_dense = bool(np.isfinite(v).all())
    msg.data = data.tobytes()
    return msg


def transforms_msgs(
    joints: np.ndarray,
    palm: tuple[np.ndarray, np.ndarray],
    header: Any,
    prefix: str,
    side: str,
    rotations: np.ndarray | None = None,
) -> list[Any]:
    """TransformStamped list of one hand: every joint frame, then the palm frame.

    Args:
        joints: (21, 3) joints, metres, in ``header.frame_id``.
        palm: (origin (3,), rotation (3, 3)) of the palm frame.
        header: the left image's header (stamp and parent frame).
        prefix: child frame prefix (``frame_prefix``).
        side: ``"right"`` or ``"left"`` (children ``<prefix><side>_<joint_name>``).
        rotations: (21, 3, 3) joint frames (columns: axes in ``header.frame_id``), or None
            for identities.
    """
    from geometry_msgs.msg import TransformStamped

    names = joint_frame_names(prefix, side)
    out = []
    positions = [*np.asarray(joints, dtype=np.float64).tolist(), palm[0].tolist()]
    quats = [*_quaternions(rotations, len(JOINT_NAMES)), quaternion_from_matrix(palm[1])]
    for name, (x, y, z), q in zip(names, positions, quats, strict=True):
        t = TransformStamped(header=header, child_frame_id=name)
        t.transform.translation.x, t.transform.translation.y = x, y
        t.transform.translation.z = z
        r = t.transform.rotation
        r.x, r.y, r.z, r.w = q
        out.append(t)
    return out


def _points(xyz: np.ndarray) -> list[Any]:
    from geometry_msgs.msg import Point

    return [Point(x=a, y=b, z=c) for a, b, c in np.asarray(xyz, dtype=np.float64).tolist()]


def _marker(header: Any, ns: str, kind: int, rgba: Sequence[float], scale: float) -> Any:
    from visualization_msgs.msg import Marker

    m = Marker(header=header, ns=ns, id=0, type=kind, action=Marker.ADD)
    m.pose.orientation.w = 1.0
    m.scale.x = m.scale.y = m.scale.z = scale
    m.color.r, m.color.g, m.color.b, m.color.a = (float(x) for x in rgba)
    m.frame_locked = False
    return m


def marker_array_msg(
    vertices: np.ndarray | None,
    joints: np.ndarray,
    faces: np.ndarray,
    header: Any,
    side: str,
) -> Any:
    """visualization_msgs/MarkerArray of one hand: mesh (when ``vertices`` is given), joints,
    skeleton, in the namespaces and colours of its side.

    Args:
        vertices: (V, 3) metres, or None to leave the mesh out (rate-limited meshes).
        joints: (21, 3) metres.
        faces: (F, 3) int triangle indices into ``vertices``.
        header: the left image's header.
        side: ``"right"`` or ``"left"`` (:func:`marker_namespaces`, :data:`SIDE_COLOURS`).
    """
    from visualization_msgs.msg import Marker, MarkerArray

    ns_mesh, ns_joints, ns_skeleton = marker_namespaces(side)
    rgba_mesh, rgba_joints, rgba_skeleton = SIDE_COLOURS[side]
    markers = []
    if vertices is not None:
        mesh = _marker(header, ns_mesh, Marker.TRIANGLE_LIST, rgba_mesh, 1.0)
        mesh.points = _points(np.asarray(vertices)[np.asarray(faces).reshape(-1)])
        markers.append(mesh)
    spheres = _marker(header, ns_joints, Marker.SPHERE_LIST, rgba_joints, 0.008)
    spheres.points = _points(joints)
    markers.append(spheres)
    lines = _marker(header, ns_skeleton, Marker.LINE_LIST, rgba_skeleton, 0.004)
    lines.points = _points(np.asarray(joints)[_BONES.reshape(-1)])
    markers.append(lines)
    return MarkerArray(markers=markers)


def delete_markers_msg(header: Any) -> Any:
    """A MarkerArray with one DELETEALL marker (clears the hand of the topic it is published
    on: each side has its own topic and RViz display)."""
    from visualization_msgs.msg import Marker, MarkerArray

    return MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])


@dataclass(frozen=True)
class OutputMessages:
    """The messages of one meshed hand (see the module docstring)."""

    joints: Any
    vertices: Any
    transforms: list[Any]
    markers: Any


def build_outputs(
    joints: np.ndarray,
    vertices: np.ndarray,
    vertex_confidence: np.ndarray,
    faces: np.ndarray,
    header: Any,
    frame_prefix: str,
    handedness: str,
    with_mesh: bool,
    joint_rotations: np.ndarray | None = None,
) -> OutputMessages:
    """Every output message of one meshed hand (the node publishes them; the latency
    benchmark times them).

    Args:
        joints: (21, 3) metres; vertices: (V, 3) metres; vertex_confidence: (V,) in [0, 1];
        faces: (F, 3) triangles; header: the left image's header; frame_prefix: TF child
        prefix; handedness: the hand's side, ``"right"`` or ``"left"`` (its palm frame, TF
        names, marker namespaces and colours); with_mesh: include the mesh marker;
        joint_rotations: (21, 3, 3) joint frames or None (identities).

    Raises:
        ConfigError: ``handedness`` is neither ``"right"`` nor ``"left"``.
    """
    palm = palm_frame(joints, _check_side(handedness))
    return OutputMessages(
        joints=pose_array_msg(joints, header, joint_rotations),
        vertices=point_cloud_msg(vertices, vertex_confidence, header),
        transforms=transforms_msgs(
            joints, palm, header, frame_prefix, handedness, joint_rotations
        ),
        markers=marker_array_msg(
            vertices if with_mesh else None, joints, faces, header, handedness
        ),
    )
