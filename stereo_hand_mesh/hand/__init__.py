"""The hand model layer (numpy only): template mesh, skeleton, skinning, pose and shape.

The package ships its own procedural right hand (:func:`template_hand`), about a thousand
vertices, posed with named anatomical parameters (:data:`POSE_PARAM_NAMES`, radians) and
shaped with :class:`HandShape`. Users who own MANO can load ``MANO_RIGHT.pkl`` safely with
:func:`load_mano`. Joint orders and maps (ours, MANO/FreiHAND, STB) are in
:mod:`stereo_hand_mesh.hand.joints`; left hands are mirrored right hands
(:func:`mirror_to_left`).

Examples:
    >>> import numpy as np
    >>> from stereo_hand_mesh.hand import template_hand, gesture_pose
    >>> hand = template_hand()
    >>> out = hand.forward(gesture_pose("fist")[None])
    >>> out.vertices.shape, out.joints.shape
    ((1, 1130, 3), (1, 21, 3))
"""

from stereo_hand_mesh.hand.chain import KinematicChain, kinematic_chain, template_chain
from stereo_hand_mesh.hand.intersect import self_intersecting_pairs, self_intersection_mask
from stereo_hand_mesh.hand.joints import (
    FINGERS,
    JOINT_NAMES,
    JOINT_PARENTS,
    MANO16_TIPS_TO_OURS,
    MANO_TIP_VERTEX_IDS,
    NUM_JOINTS,
    OURS_TO_STB,
    STB_JOINT_NAMES,
    STB_TO_OURS,
    WRIST,
    joints_ours_from_stb,
    palm_center,
    stb_from_ours,
)
from stereo_hand_mesh.hand.mano import ManoHandModel, load_mano
from stereo_hand_mesh.hand.mesh import (
    connected_components,
    edge_face_counts,
    mesh_edges,
    signed_volume,
    topology_hash,
    vertex_normals,
)
from stereo_hand_mesh.hand.model import (
    HandModel,
    HandModelLike,
    HandOutput,
    build_hand_model,
    mirror_joints_to_left,
    mirror_to_left,
    template_hand,
)
from stereo_hand_mesh.hand.poses import GESTURES, gesture_pose, pose_from_dict, sample_pose
from stereo_hand_mesh.hand.shape import (
    NUM_SHAPE_PARAMS,
    SHAPE_LIMITS,
    SHAPE_PARAM_NAMES,
    HandShape,
    sample_shape,
    sample_shape_vectors,
)
from stereo_hand_mesh.hand.skeleton import (
    BONE_NAMES,
    NUM_POSE_PARAMS,
    POSE_LIMITS,
    POSE_PARAM_NAMES,
    clip_pose,
    pose_index,
)

__all__ = [
    "BONE_NAMES",
    "FINGERS",
    "GESTURES",
    "JOINT_NAMES",
    "JOINT_PARENTS",
    "MANO16_TIPS_TO_OURS",
    "MANO_TIP_VERTEX_IDS",
    "NUM_JOINTS",
    "NUM_POSE_PARAMS",
    "NUM_SHAPE_PARAMS",
    "OURS_TO_STB",
    "POSE_LIMITS",
    "POSE_PARAM_NAMES",
    "SHAPE_LIMITS",
    "SHAPE_PARAM_NAMES",
    "STB_JOINT_NAMES",
    "STB_TO_OURS",
    "WRIST",
    "HandModel",
    "HandModelLike",
    "HandOutput",
    "HandShape",
    "KinematicChain",
    "ManoHandModel",
    "build_hand_model",
    "clip_pose",
    "connected_components",
    "edge_face_counts",
    "gesture_pose",
    "joints_ours_from_stb",
    "kinematic_chain",
    "load_mano",
    "mesh_edges",
    "mirror_joints_to_left",
    "mirror_to_left",
    "palm_center",
    "pose_from_dict",
    "pose_index",
    "sample_pose",
    "sample_shape",
    "sample_shape_vectors",
    "self_intersecting_pairs",
    "self_intersection_mask",
    "signed_volume",
    "stb_from_ours",
    "template_chain",
    "template_hand",
    "topology_hash",
    "vertex_normals",
]
