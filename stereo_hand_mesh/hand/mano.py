"""Loader for a user-supplied ``MANO_RIGHT.pkl``, without executing pickled code.

The MANO model cannot ship with this package (licence); users who own it can load it with
:func:`load_mano` and get a :class:`ManoHandModel` with the same interface as
:class:`~stereo_hand_mesh.hand.model.HandModel` (faces, template, joint regressor in our
21-joint order, skin weights, edges, topology hash, ``forward``).

Safety: MANO pickles are Python 2 pickles that reference numpy, scipy.sparse and chumpy
classes. They are read by :class:`_RestrictedUnpickler`, whose ``find_class`` resolves only
a whitelist: numpy array and scalar reconstruction, ``copyreg._reconstructor`` with
``object``, ``_codecs.encode`` limited to text codecs (how protocol-2 pickles store bytes),
scipy sparse matrices and any ``chumpy`` class, the last two mapped to small
local stand-ins that only keep their pickled state (chumpy need not be installed, and no
scipy or chumpy code runs). Any other global raises :class:`ModelFileError` naming it.
"""

from __future__ import annotations

import codecs
import copyreg
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from stereo_hand_mesh._check import check_finite, check_shape
from stereo_hand_mesh.errors import ModelFileError, ShapeError
from stereo_hand_mesh.hand.joints import MANO16_TIPS_TO_OURS, MANO_TIP_VERTEX_IDS
from stereo_hand_mesh.hand.mesh import mesh_edges, topology_hash
from stereo_hand_mesh.hand.model import HandOutput
from stereo_hand_mesh.hand.skeleton import axis_angle_to_matrix
from stereo_hand_mesh.hand.skinning import blend_offsets

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer

__all__ = ["MANO_NUM_VERTICES", "ManoHandModel", "load_mano", "load_mano_arrays"]

MANO_NUM_VERTICES = 778
MANO_NUM_FACES = 1538
_MANO_JOINTS = 16


class _PickledState:
    """Stand-in for a whitelisted foreign class: keeps constructor args and pickled state."""

    module = ""
    name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _PickledState:
        obj = object.__new__(cls)
        obj.__dict__["args"] = args
        obj.__dict__["state"] = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<pickled {self.module}.{self.name}>"


class _ChumpyObject(_PickledState):
    """Stand-in for ``chumpy`` classes (``chumpy.ch.Ch`` and friends)."""

    @property
    def r(self) -> np.ndarray:
        """The array value of a leaf ``Ch`` (its pickled ``x``)."""
        state = self.state
        if isinstance(state, dict) and "x" in state:
            return _as_array(state["x"], f"{self.module}.{self.name}.x")
        if isinstance(state, dict) and "a" in state:  # e.g. chumpy reordering wrappers
            return _as_array(state["a"], f"{self.module}.{self.name}.a")
        raise ModelFileError(
            f"chumpy object {self.module}.{self.name} expected a pickled array 'x'; got "
            f"state keys {sorted(state) if isinstance(state, dict) else type(state).__name__}"
        )


class _SparseMatrix(_PickledState):
    """Stand-in for ``scipy.sparse`` compressed matrices."""

    def to_scipy(self) -> sp.spmatrix:
        state = self.state
        if not isinstance(state, dict):
            raise ModelFileError(f"sparse matrix expected a dict state; got {type(state)}")
        shape = state.get("_shape", state.get("shape"))
        fmt = self.name[:3]
        try:
            data, indices, indptr = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
            if fmt == "csc":
                return sp.csc_matrix((data, indices, indptr), shape=tuple(shape))
            if fmt == "csr":
                return sp.csr_matrix((data, indices, indptr), shape=tuple(shape))
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"sparse matrix {self.name} is malformed: {err}") from err
        raise ModelFileError(f"sparse matrix expected csc or csr; got {self.name}")


def _encode_text(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to plain text codecs (protocol-2 pickles of bytes use it)."""
    if codecs.lookup(encoding).name not in ("latin-1", "iso8859-1", "utf-8", "ascii"):
        raise ModelFileError(f"pickled bytes expected a latin-1 or utf-8 codec; got {encoding!r}")
    return codecs.encode(text, encoding, errors)


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _reconstruct for m in ("numpy.core.multiarray",
                                                   "numpy._core.multiarray")},
    **{(m, "scalar"): scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("_codecs", "encode"): _encode_text,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
}  # fmt: skip
_SPARSE_MODULES = {f"scipy.sparse.{p}{fmt}" for p in ("", "_") for fmt in ("csc", "csr")}


def _stand_in(base: type[_PickledState], module: str, name: str) -> type[_PickledState]:
    return type(name, (base,), {"module": module, "name": name})


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only whitelisted globals (see module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module in _SPARSE_MODULES and name in ("csc_matrix", "csr_matrix"):
            return _stand_in(_SparseMatrix, module, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _stand_in(_ChumpyObject, module, name)
        raise ModelFileError(
            f"MANO file expected only numpy, scipy.sparse and chumpy globals; got the "
            f"forbidden global {module}.{name} (refusing to load)"
        )


def _as_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, _ChumpyObject):
        return value.r
    if isinstance(value, _SparseMatrix):
        return value.to_scipy().toarray()
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as err:  # pragma: no cover - defensive
        raise ModelFileError(f"MANO field {name} expected an array; got {type(value)}") from err


def load_mano_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read the arrays of a MANO pickle safely.

    Args:
        path: ``MANO_RIGHT.pkl`` (or any MANO-format pickle).

    Returns:
        Dict with float64 ``v_template`` (778, 3), int64 ``f`` (1538, 3), dense
        ``J_regressor`` (16, 778), ``weights`` (778, 16), int64 ``kintree_table`` (2, 16),
        ``shapedirs`` (778, 3, 10), ``posedirs`` (778, 3, 135), ``hands_components``
        (45, 45) and ``hands_mean`` (45,) (the last four when present).

    Raises:
        ModelFileError: missing or unreadable file, forbidden global, missing key or wrong
            shape.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"MANO file expected at {path}; got {err}") from err
    try:
        data = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except ModelFileError:
        raise
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise ModelFileError(f"MANO file {path} expected a valid pickle; got {err!r}") from err
    if not isinstance(data, dict):
        raise ModelFileError(f"MANO file {path} expected a dict; got {type(data).__name__}")
    required = {"v_template": (778, 3), "f": (1538, 3), "J_regressor": (16, 778),
                "weights": (778, 16), "kintree_table": (2, 16)}  # fmt: skip
    optional = {"shapedirs": (778, 3, None), "posedirs": (778, 3, 135),
                "hands_components": (None, 45), "hands_mean": (45,)}  # fmt: skip
    out: dict[str, np.ndarray] = {}
    for key, shape in {**required, **optional}.items():
        if key not in data:
            if key in required:
                raise ModelFileError(f"MANO file {path} expected key {key!r}; got {sorted(data)}")
            continue
        arr = _as_array(data[key], key)
        try:
            check_shape(arr, shape, f"MANO {key}")
        except ShapeError as err:
            raise ModelFileError(str(err)) from err
        out[key] = arr.astype(np.int64 if key in ("f", "kintree_table") else np.float64)
    return out


@dataclass(frozen=True)
class ManoHandModel:
    """MANO right hand with the package's hand-model interface (numpy).

    Pose interface (MANO's own): ``pose`` (B, 45) axis-angles of the 15 finger joints in
    MANO's order (index1-3, middle1-3, little1-3, ring1-3, thumb1-3), relative to the flat
    hand (or to ``hands_mean`` when loaded with ``flat_hand_mean=False``), ``shape`` (B, 10)
    betas, ``global_rot`` (B, 3) axis-angle about MANO's root joint, ``trans`` (B, 3).

    Attributes:
        faces: (1538, 3) int64. template_vertices: (778, 3) metres.
        joint_regressor: (21, 778): MANO's 16 regressed joints plus the 5 fingertip
            vertices, reordered to our joint order.
        skin_weights: (778, 16). shape_dirs: (10, 778, 3). pose_dirs: (135, 778, 3).
        mano_regressor: (16, 778) MANO's own joint regressor. parents: (16,) int64.
        hands_mean: (45,) MANO's mean pose (zeros if absent).
        edges, num_vertices, num_faces, topology_hash: as in HandModel.
    """

    faces: np.ndarray
    template_vertices: np.ndarray
    joint_regressor: np.ndarray
    skin_weights: np.ndarray
    shape_dirs: np.ndarray
    pose_dirs: np.ndarray
    mano_regressor: np.ndarray
    parents: np.ndarray
    hands_mean: np.ndarray
    flat_hand_mean: bool = True
    name: str = "mano_right"

    @property
    def num_vertices(self) -> int:
        return len(self.template_vertices)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def num_pose_params(self) -> int:
        return 3 * (_MANO_JOINTS - 1)

    @property
    def num_shape_params(self) -> int:
        return len(self.shape_dirs)

    @property
    def edges(self) -> np.ndarray:
        return mesh_edges(self.faces)

    @property
    def topology_hash(self) -> str:
        return topology_hash(self.faces, self.num_vertices)

    def forward(
        self,
        pose: np.ndarray,
        shape: np.ndarray | None = None,
        global_rot: np.ndarray | None = None,
        trans: np.ndarray | None = None,
    ) -> HandOutput:
        """MANO forward pass: shape and pose blend shapes, then linear blend skinning.

        Args:
            pose: (B, 45) axis-angles (radians) of the 15 finger joints.
            shape: (B, 10) betas, or None for zeros.
            global_rot: (B, 3) axis-angle about the root joint, or None.
            trans: (B, 3) translation (metres), or None.

        Returns:
            :class:`HandOutput`: vertices (B, 778, 3); joints (B, 21, 3) regressed from the
            posed mesh (MANO regressor + tip vertices, our order); skeleton (B, 21, 3) the
            kinematic joints with the same tips.
        """
        if not isinstance(pose, np.ndarray):
            raise ShapeError(f"pose expected a numpy array of shape (B, 45); got {type(pose)}")
        batch = check_shape(pose, ("B", self.num_pose_params), "pose")["B"]
        check_finite(pose, "pose")
        betas = np.zeros((batch, self.num_shape_params)) if shape is None else shape
        check_shape(betas, (batch, self.num_shape_params), "shape")
        rot0 = np.zeros((batch, 3)) if global_rot is None else np.asarray(global_rot, float)
        check_shape(rot0, (batch, 3), "global_rot")
        shift = np.zeros((batch, 3)) if trans is None else np.asarray(trans, float)
        check_shape(shift, (batch, 3), "trans")
        hand_pose = pose if self.flat_hand_mean else pose + self.hands_mean
        full = np.concatenate([rot0, hand_pose], axis=1).reshape(batch, _MANO_JOINTS, 3)
        rot = axis_angle_to_matrix(full)  # (B, 16, 3, 3)
        v_shaped = self.template_vertices + blend_offsets(betas, self.shape_dirs)
        rest_joints = self.mano_regressor @ v_shaped
        feature = (rot[:, 1:] - np.eye(3)).reshape(batch, -1)
        v_posed = v_shaped + blend_offsets(feature, self.pose_dirs)
        g_rot = np.empty_like(rot)
        g_tr = np.empty((batch, _MANO_JOINTS, 3))
        g_rot[:, 0] = rot[:, 0]
        g_tr[:, 0] = rest_joints[:, 0]
        for j in range(1, _MANO_JOINTS):
            p = self.parents[j]
            g_rot[:, j] = g_rot[:, p] @ rot[:, j]
            offset = rest_joints[:, j] - rest_joints[:, p]
            g_tr[:, j] = np.einsum("bij,bj->bi", g_rot[:, p], offset) + g_tr[:, p]
        posed_joints = g_tr + shift[:, None]
        # Skinning transforms map rest points: x -> G_rot (x - J_rest) + G_tr.
        tr = g_tr - np.einsum("bjik,bjk->bji", g_rot, rest_joints) + shift[:, None]
        transforms = np.concatenate([g_rot, tr[..., None]], axis=-1)
        blended = (self.skin_weights @ transforms.reshape(batch, _MANO_JOINTS, 12)).reshape(
            batch, -1, 3, 4
        )
        vertices = np.einsum("bvij,bvj->bvi", blended[..., :3], v_posed) + blended[..., 3]
        joints = self.joint_regressor @ vertices
        tips = vertices[:, list(MANO_TIP_VERTEX_IDS)]
        skeleton = np.concatenate([posed_joints, tips], axis=1)[:, MANO16_TIPS_TO_OURS]
        return HandOutput(vertices=vertices, joints=joints, skeleton=skeleton)


def load_mano(path: str | Path, flat_hand_mean: bool = True) -> ManoHandModel:
    """Load a user-supplied ``MANO_RIGHT.pkl`` safely (see module docstring).

    Args:
        path: path of the MANO pickle.
        flat_hand_mean: if True (default) pose zero is the flat template hand; if False,
            MANO's ``hands_mean`` is added to every pose (MANO's own default).

    Returns:
        The model.

    Raises:
        ModelFileError: see :func:`load_mano_arrays`.
    """
    arrays = load_mano_arrays(path)
    regressor16 = arrays["J_regressor"]
    tips = np.zeros((len(MANO_TIP_VERTEX_IDS), MANO_NUM_VERTICES))
    tips[np.arange(len(MANO_TIP_VERTEX_IDS)), list(MANO_TIP_VERTEX_IDS)] = 1.0
    regressor21 = np.concatenate([regressor16, tips])[MANO16_TIPS_TO_OURS]
    parents = arrays["kintree_table"][0].copy()
    parents[0] = -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, _MANO_JOINTS)):
        raise ModelFileError(f"MANO kintree_table expected parents before children; got {parents}")
    shapedirs = arrays.get("shapedirs", np.zeros((MANO_NUM_VERTICES, 3, 10)))
    posedirs = arrays.get("posedirs", np.zeros((MANO_NUM_VERTICES, 3, 135)))
    return ManoHandModel(
        faces=arrays["f"],
        template_vertices=arrays["v_template"],
        joint_regressor=regressor21,
        skin_weights=arrays["weights"],
        shape_dirs=np.ascontiguousarray(shapedirs.transpose(2, 0, 1)),
        pose_dirs=np.ascontiguousarray(posedirs.transpose(2, 0, 1)),
        mano_regressor=regressor16,
        parents=parents,
        hands_mean=arrays.get("hands_mean", np.zeros(45)),
        flat_hand_mean=flat_hand_mean,
    )
