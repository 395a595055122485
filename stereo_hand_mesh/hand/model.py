"""The hand model interface and the procedural template hand.

:class:`HandModel` is the package's own right hand (no licence needed): template mesh,
skeleton, skin weights, shape blend shapes and a joint regressor, posed with anatomical
pose parameters. :func:`template_hand` returns a process-wide cached instance.

Forward pass (numpy, batched)::

    rest = scale * (template + sum_k (beta_k - 1) D_k)          # shape, exact
    transforms, skeleton = forward_kinematics(rest_joints, pose, global_rot, trans)
    vertices = linear_blend_skinning(rest, skin_weights, transforms)
    joints = joint_regressor @ vertices                          # the official joints

Left hands: the model is a right hand; :func:`mirror_to_left` turns any right-hand output
into a left hand by negating x in the frame the vertices are expressed in (hand frame or
camera frame) and flipping the face winding so normals still point outward.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ShapeError
from stereo_hand_mesh.hand.joints import NUM_JOINTS
from stereo_hand_mesh.hand.mesh import mesh_edges, topology_hash
from stereo_hand_mesh.hand.shape import (
    NUM_SHAPE_PARAMS,
    HandShape,
    check_shape_vectors,
    shape_blend_shapes,
)
from stereo_hand_mesh.hand.skeleton import (
    NUM_BONES,
    NUM_POSE_PARAMS,
    POSE_LIMITS,
    POSE_PARAM_NAMES,
    check_pose_inputs,
    forward_kinematics,
    joint_frames,
)
from stereo_hand_mesh.hand.skinning import (
    blend_offsets,
    compute_skin_weights,
    linear_blend_skinning,
)
from stereo_hand_mesh.hand.template import build_template_mesh

__all__ = [
    "HandModel",
    "HandModelLike",
    "HandOutput",
    "build_hand_model",
    "mirror_joints_to_left",
    "mirror_to_left",
    "template_hand",
]

#: Name recorded with checkpoints; bump when the template's geometry or topology changes.
TEMPLATE_NAME = "stereo_hand_mesh_procedural_v1"


@dataclass(frozen=True)
class HandOutput:
    """Posed hands.

    Attributes:
        vertices: (B, V, 3) vertices, metres (hand frame moved by global_rot and trans).
        joints: (B, 21, 3) joints regressed from the vertices (the official joints, in
            :data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES` order), metres.
        skeleton: (B, 21, 3) joints of the kinematic skeleton that drove the skinning,
            metres; equal to ``joints`` within the regressor's error.
    """

    vertices: np.ndarray
    joints: np.ndarray
    skeleton: np.ndarray


@runtime_checkable
class HandModelLike(Protocol):
    """What every hand model offers (:class:`HandModel`, and MANO via
    :class:`~stereo_hand_mesh.hand.mano.ManoHandModel`). Pose and shape vectors are each
    model's own; ``forward`` takes (B, P) poses, optional (B, S) shapes, (B, 3) global
    axis-angle rotations and (B, 3) translations (metres)."""

    name: str
    faces: np.ndarray
    template_vertices: np.ndarray
    joint_regressor: np.ndarray
    skin_weights: np.ndarray

    @property
    def num_vertices(self) -> int: ...

    @property
    def edges(self) -> np.ndarray: ...

    @property
    def topology_hash(self) -> str: ...

    def forward(
        self,
        pose: np.ndarray,
        shape: np.ndarray | None = None,
        global_rot: np.ndarray | None = None,
        trans: np.ndarray | None = None,
    ) -> HandOutput: ...


class HandModel:
    """Procedural right-hand model (numpy only).

    Attributes:
        name: template name (recorded with checkpoints).
        faces: (F, 3) int64 outward-oriented triangles.
        template_vertices: (V, 3) rest vertices of the default shape, metres, hand frame.
        rest_joints: (21, 3) rest skeleton of the default shape, metres.
        joint_frames: (K, 3, 3) rest frames of the skinning parts (see skeleton module).
        skin_weights: (V, K) linear blend skinning weights, K = 16 parts.
        shape_dirs: (S - 1, V, 3) blend shapes of ``SHAPE_PARAM_NAMES[1:]`` (metres per unit).
        joint_shape_dirs: (S - 1, 21, 3) the same for the skeleton.
        joint_regressor: (21, V) non-negative, sparse, rows summing to 1.
        edges: (E, 2) unique undirected edges, ``edges[:, 0] < edges[:, 1]``.
        num_vertices, num_faces: V and F.
        num_pose_params, num_shape_params: P and S.
        pose_param_names, pose_limits: names and (2, P) limits (radians) of the pose vector.
        topology_hash: 16 hex characters identifying the connectivity.
    """

    def __init__(
        self,
        faces: np.ndarray,
        template_vertices: np.ndarray,
        rest_joints: np.ndarray,
        skin_weights: np.ndarray,
        joint_regressor: np.ndarray | None = None,
    ) -> None:
        check_shape(template_vertices, ("V", 3), "template_vertices")
        check_shape(faces, (None, 3), "faces")
        check_shape(rest_joints, (NUM_JOINTS, 3), "rest_joints")
        check_shape(skin_weights, (len(template_vertices), NUM_BONES), "skin_weights")
        self.name = TEMPLATE_NAME
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.template_vertices = np.asarray(template_vertices, dtype=np.float64)
        self.rest_joints = np.asarray(rest_joints, dtype=np.float64)
        self.skin_weights = np.asarray(skin_weights, dtype=np.float64)
        self.joint_frames = joint_frames(self.rest_joints)
        self.shape_dirs, self.joint_shape_dirs = shape_blend_shapes(
            self.template_vertices, self.rest_joints, self.skin_weights
        )
        self.num_vertices = len(self.template_vertices)
        self.num_faces = len(self.faces)
        self.num_pose_params = NUM_POSE_PARAMS
        self.num_shape_params = NUM_SHAPE_PARAMS
        self.pose_param_names = POSE_PARAM_NAMES
        self.pose_limits = POSE_LIMITS
        self.edges = mesh_edges(self.faces)
        self.topology_hash = topology_hash(self.faces, self.num_vertices)
        if joint_regressor is None:
            from stereo_hand_mesh.hand.regressor import fit_joint_regressor

            joint_regressor = fit_joint_regressor(self)
        check_shape(joint_regressor, (NUM_JOINTS, self.num_vertices), "joint_regressor")
        self.joint_regressor = np.asarray(joint_regressor, dtype=np.float64)
        for arr in vars(self).values():
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)

    def shaped_rest(
        self, shape: HandShape | np.ndarray | None, batch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rest vertices and skeleton for a shape.

        Args:
            shape: None (default hand), a :class:`HandShape` (same for the whole batch) or
                (B, S) shape vectors (``HandShape.to_vector`` order, within limits).
            batch: B.

        Returns:
            vertices (B, V, 3) and joints (B, 21, 3), metres, hand frame.
        """
        if shape is None:
            shape = HandShape()
        if isinstance(shape, HandShape):
            vec = np.broadcast_to(shape.to_vector(), (batch, NUM_SHAPE_PARAMS))
        else:
            if not isinstance(shape, np.ndarray):
                raise ShapeError(
                    f"shape expected None, a HandShape or an array of shape (B, "
                    f"{NUM_SHAPE_PARAMS}); got {type(shape).__name__}"
                )
            vec = check_shape_vectors(shape, batch)
        beta = vec[:, 1:] - 1.0
        scale = vec[:, :1, None]
        verts = self.template_vertices + blend_offsets(beta, self.shape_dirs)
        joints = self.rest_joints + blend_offsets(beta, self.joint_shape_dirs)
        return scale * verts, scale * joints

    def forward(
        self,
        pose: np.ndarray,
        shape: HandShape | np.ndarray | None = None,
        global_rot: np.ndarray | None = None,
        trans: np.ndarray | None = None,
    ) -> HandOutput:
        """Pose and shape the hand.

        Poses are used as given (not clipped); use
        :func:`~stereo_hand_mesh.hand.skeleton.clip_pose` to stay within the limits.

        Args:
            pose: (B, P) pose parameters, radians (``pose_param_names`` order).
            shape: None, a :class:`HandShape`, or (B, S) shape vectors.
            global_rot: (B, 3) axis-angle rotation of the hand about the wrist, or None.
            trans: (B, 3) position of the wrist (metres), or None for the origin.

        Returns:
            :class:`HandOutput` with (B, V, 3) vertices and (B, 21, 3) joints, metres.

        Raises:
            ShapeError: wrongly shaped or non-finite inputs.
            ConfigError: shape vectors outside :data:`~stereo_hand_mesh.hand.shape.SHAPE_LIMITS`.

        Examples:
            >>> hand = template_hand()
            >>> out = hand.forward(np.zeros((2, hand.num_pose_params)))
            >>> out.vertices.shape == (2, hand.num_vertices, 3)
            True
        """
        vertices, skeleton = self.skin(pose, shape, global_rot, trans)
        joints = self.joint_regressor @ vertices
        return HandOutput(vertices=vertices, joints=joints, skeleton=skeleton)

    def skin(
        self,
        pose: np.ndarray,
        shape: HandShape | np.ndarray | None = None,
        global_rot: np.ndarray | None = None,
        trans: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Skinned vertices (B, V, 3) and skeleton joints (B, 21, 3), metres.

        Same arguments as :meth:`forward`, without the joint regressor.
        """
        pose, global_rot, trans = check_pose_inputs(pose, global_rot, trans)
        batch = pose.shape[0]
        rest, rest_joints = self.shaped_rest(shape, batch)
        transforms, skeleton = forward_kinematics(
            rest_joints, pose, self.joint_frames, global_rot, trans
        )
        return linear_blend_skinning(rest, self.skin_weights, transforms), skeleton

    def __repr__(self) -> str:
        return (
            f"HandModel(name={self.name!r}, V={self.num_vertices}, F={self.num_faces}, "
            f"P={self.num_pose_params}, S={self.num_shape_params}, "
            f"topology_hash={self.topology_hash!r})"
        )


def build_hand_model() -> HandModel:
    """Build the procedural template hand from scratch (about half a second)."""
    mesh = build_template_mesh()
    weights = compute_skin_weights(mesh.vertices, mesh.faces, mesh.joints)
    return HandModel(mesh.faces, mesh.vertices, mesh.joints, weights)


@functools.lru_cache(maxsize=1)
def template_hand() -> HandModel:
    """The process-wide procedural template hand (built on first use, then cached)."""
    return build_hand_model()


def mirror_to_left(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror right-hand vertices into a left hand.

    Convention: negate x in whatever frame the vertices are expressed in (the hand frame, or
    a camera's optical frame for a hand seen by that camera), and flip the winding of every
    face so that normals still point outward. Joints mirror the same way (negate x) and keep
    their names.

    Args:
        vertices: (*, V, 3) vertices (metres).
        faces: (F, 3) triangles of the right hand.

    Returns:
        (*, V, 3) mirrored vertices and (F, 3) flipped faces.
    """
    check_shape(vertices, ("*", None, 3), "vertices")
    check_shape(faces, (None, 3), "faces")
    mirrored = np.array(vertices, dtype=np.float64, copy=True)
    mirrored[..., 0] *= -1.0
    return mirrored, np.ascontiguousarray(np.asarray(faces)[:, ::-1])


def mirror_joints_to_left(joints: np.ndarray) -> np.ndarray:
    """Mirror (*, J, 3) joints (negate x), as :func:`mirror_to_left` does for vertices."""
    check_shape(joints, ("*", None, 3), "joints")
    out = np.array(joints, dtype=np.float64, copy=True)
    out[..., 0] *= -1.0
    return out
