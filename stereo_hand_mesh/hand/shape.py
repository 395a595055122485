"""Shape parameters of the template hand and their linear blend shapes.

A :class:`HandShape` scales bones and thickness around the default adult right hand. Every
parameter but ``scale`` acts through skinned, per-bone affine maps that are linear in the
parameter, so the shaped rest mesh is exactly
``scale * (template + sum_k (beta_k - 1) * D_k)`` with blend shapes ``D_k`` built once
(:func:`shape_blend_shapes`). ``scale`` then scales the whole hand about the wrist.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from stereo_hand_mesh._check import check_finite, check_shape
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.joints import FINGERS, JOINT_NAMES, NUM_JOINTS
from stereo_hand_mesh.hand.skeleton import BONE_JOINTS

__all__ = [
    "NUM_SHAPE_PARAMS",
    "SHAPE_LIMITS",
    "SHAPE_PARAM_NAMES",
    "HandShape",
    "sample_shape",
    "sample_shape_vectors",
    "shape_blend_shapes",
]


@dataclass(frozen=True)
class HandShape:
    """Shape of the hand as scale factors (1.0 = default adult hand, about 0.19 m long).

    Attributes:
        scale: overall scale about the wrist, in [0.8, 1.2].
        palm_width: palm width (knuckle spread), in [0.85, 1.15].
        palm_length: palm length (wrist to knuckles), in [0.85, 1.15].
        finger_thickness: radius of every digit about its bones, in [0.8, 1.2].
        thumb_length, index_length, middle_length, ring_length, little_length: bone lengths
            of each digit (all its phalanges; the thumb's metacarpal too), in [0.85, 1.15].
    """

    scale: float = 1.0
    palm_width: float = 1.0
    palm_length: float = 1.0
    finger_thickness: float = 1.0
    thumb_length: float = 1.0
    index_length: float = 1.0
    middle_length: float = 1.0
    ring_length: float = 1.0
    little_length: float = 1.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in zip(SHAPE_PARAM_NAMES, SHAPE_LIMITS.T, strict=True):
            value = getattr(self, name)
            if not (np.isfinite(value) and lo - 1e-9 <= value <= hi + 1e-9):
                raise ConfigError(
                    f"HandShape.{name} expected a value in [{lo}, {hi}]; got {value}"
                )

    def to_vector(self) -> np.ndarray:
        """(S,) float64 parameters in :data:`SHAPE_PARAM_NAMES` order."""
        return np.array([getattr(self, n) for n in SHAPE_PARAM_NAMES], dtype=np.float64)

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> HandShape:
        """Inverse of :meth:`to_vector`; ``vector`` is (S,)."""
        vector = np.asarray(vector, dtype=np.float64)
        check_shape(vector, (NUM_SHAPE_PARAMS,), "shape vector")
        return cls(**{n: float(v) for n, v in zip(SHAPE_PARAM_NAMES, vector, strict=True)})


SHAPE_PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(HandShape))
NUM_SHAPE_PARAMS = len(SHAPE_PARAM_NAMES)
_LIMITS = {"scale": (0.8, 1.2), "finger_thickness": (0.8, 1.2)}
#: (2, S) lower and upper limits of each shape parameter.
SHAPE_LIMITS = np.array([_LIMITS.get(n, (0.85, 1.15)) for n in SHAPE_PARAM_NAMES]).T
SHAPE_LIMITS.setflags(write=False)


def check_shape_vectors(shape: np.ndarray, batch: int) -> np.ndarray:
    """Validate (B, S) shape vectors against :data:`SHAPE_LIMITS`; returns float64."""
    check_shape(shape, (batch, NUM_SHAPE_PARAMS), "shape")
    shape = np.asarray(shape, dtype=np.float64)
    check_finite(shape, "shape")
    bad = (shape < SHAPE_LIMITS[0] - 1e-9) | (shape > SHAPE_LIMITS[1] + 1e-9)
    if bad.any():
        b, k = np.argwhere(bad)[0]
        lo, hi = SHAPE_LIMITS[:, k]
        raise ConfigError(
            f"shape[:, {k}] ({SHAPE_PARAM_NAMES[k]}) expected values in [{lo}, {hi}]; "
            f"got {shape[b, k]} at batch index {b}"
        )
    return shape


def sample_shape(rng: np.random.Generator, spread: float = 1.0) -> HandShape:
    """Random plausible hand shape.

    Overall scale is uniform over its range; the other factors are independent normals
    around 1 (standard deviation ``0.05 * spread``) clipped to their limits, so proportions
    stay close to an average hand.
    """
    return HandShape.from_vector(sample_shape_vectors(rng, 1, spread)[0])


def sample_shape_vectors(rng: np.random.Generator, n: int, spread: float = 1.0) -> np.ndarray:
    """(n, S) random shape vectors (see :func:`sample_shape`)."""
    out = np.clip(
        1.0 + 0.05 * spread * rng.standard_normal((n, NUM_SHAPE_PARAMS)),
        SHAPE_LIMITS[0],
        SHAPE_LIMITS[1],
    )
    out[:, 0] = rng.uniform(SHAPE_LIMITS[0, 0], SHAPE_LIMITS[1, 0], n)
    return out


def _digit_of_joint(j: int) -> str | None:
    name = JOINT_NAMES[j]
    return None if name == "wrist" else name.split("_")[0]


def _shaped(
    vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray, params: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Rest vertices (V, 3) and joints (21, 3) for shape factors ``params`` (no ``scale``)."""
    palm = np.diag([params["palm_width"], params["palm_length"], 1.0])
    new_joints = np.empty_like(joints)
    new_joints[0] = joints[0]
    for f, finger in enumerate(FINGERS):
        base = 1 + 4 * f
        s = params[f"{finger}_length"]
        new_joints[base] = palm @ (joints[base] - joints[0]) + joints[0]
        for k in range(1, 4):
            new_joints[base + k] = new_joints[base + k - 1] + s * (
                joints[base + k] - joints[base + k - 1]
            )
    out = np.zeros_like(vertices)
    t = params["finger_thickness"]
    for b, j in enumerate(BONE_JOINTS):
        if j == 0:
            affine = palm
        else:
            axis = joints[j + 1] - joints[j]
            axis /= np.linalg.norm(axis)
            along = np.outer(axis, axis)
            affine = params[f"{_digit_of_joint(j)}_length"] * along + t * (np.eye(3) - along)
        out += weights[:, b : b + 1] * (new_joints[j] + (vertices - joints[j]) @ affine.T)
    return out, new_joints


def shape_blend_shapes(
    vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Linear blend shapes of the shape parameters other than ``scale``.

    Each bone maps its skinned vertices by an affine map about its joint: the palm scales
    x (width) and y (length) about the wrist; a digit's bone stretches along itself by the
    digit's length factor and across by ``finger_thickness``, and moves with its (scaled)
    parent joint. The result is affine in the parameters, so the blend shapes are exact.

    Args:
        vertices: (V, 3) template vertices (metres). joints: (21, 3) rest joints.
        weights: (V, NUM_BONES) skin weights.

    Returns:
        vertex_dirs: (S - 1, V, 3) and joint_dirs: (S - 1, 21, 3), metres per unit of
        parameters ``SHAPE_PARAM_NAMES[1:]``.
    """
    names = SHAPE_PARAM_NAMES[1:]
    base = dict.fromkeys(names, 1.0)
    v0, j0 = _shaped(vertices, joints, weights, base)
    vdirs = np.empty((len(names), *vertices.shape))
    jdirs = np.empty((len(names), NUM_JOINTS, 3))
    for k, name in enumerate(names):
        v1, j1 = _shaped(vertices, joints, weights, {**base, name: 2.0})
        vdirs[k] = v1 - v0
        jdirs[k] = j1 - j0
    return vdirs, jdirs
