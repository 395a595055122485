"""The MANO loader: a synthetic MANO pickle that references chumpy, loaded without chumpy,
and refusal of pickles that reference anything outside the whitelist."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from stereo_hand_mesh.errors import ModelFileError, ShapeError
from stereo_hand_mesh.hand import (
    MANO16_TIPS_TO_OURS,
    MANO_TIP_VERTEX_IDS,
    HandModelLike,
    load_mano,
)
from stereo_hand_mesh.hand.mano import load_mano_arrays
from stereo_hand_mesh.hand.skeleton import axis_angle_to_matrix

FAKE_CHUMPY = '''
class Ch(object):
    """Leaf chumpy array, pickled like chumpy's: a state dict holding ``x``."""

    def __init__(self, x):
        self.x = x
        self.label = "fake"

    def __getstate__(self):
        return dict(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(state)
'''

WRITER = """
import pickle, sys
import numpy as np
import scipy.sparse as sp
from chumpy.ch import Ch

rng = np.random.default_rng(7)
n = 778
v = rng.normal(scale=0.04, size=(n, 3))
labels = rng.integers(0, 16, n)
dense = np.zeros((16, n))
for j in range(16):
    members = np.nonzero(labels == j)[0][:5]
    dense[j, members] = 1.0 / len(members)
arrays = dict(
    v_template=v,
    f=rng.integers(0, n, (1538, 3)).astype(np.uint32),
    J_regressor=dense,
    weights=np.eye(16)[labels],
    kintree_table=np.array([[4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14],
                            list(range(16))], dtype=np.int64),
    shapedirs=rng.normal(scale=0.01, size=(n, 3, 10)),
    posedirs=np.zeros((n, 3, 135)),
    hands_components=rng.normal(size=(45, 45)),
    hands_mean=rng.normal(scale=0.1, size=45),
)
data = dict(arrays)
data["J_regressor"] = sp.csc_matrix(dense)
data["shapedirs"] = Ch(arrays["shapedirs"])
data["bs_style"] = "lbs"
with open(sys.argv[1], "wb") as fh:
    pickle.dump(data, fh, protocol=2)
np.savez(sys.argv[2], labels=labels, **arrays)
"""


@pytest.fixture(scope="module")
def fake_mano(tmp_path_factory) -> tuple[Path, dict]:
    """A MANO-format pickle written by a process where a fake ``chumpy`` is importable."""
    root = tmp_path_factory.mktemp("mano")
    package = root / "site" / "chumpy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .ch import Ch\n")
    (package / "ch.py").write_text(textwrap.dedent(FAKE_CHUMPY))
    pkl, npz = root / "MANO_RIGHT.pkl", root / "expected.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "site"), str(REPO)]))
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(pkl), str(npz)], env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with np.load(npz) as expected:
        return pkl, dict(expected)


@pytest.fixture
def no_chumpy(monkeypatch):
    """Make ``import chumpy`` fail in this process, whatever is installed."""
    monkeypatch.setitem(sys.modules, "chumpy", None)
    monkeypatch.setitem(sys.modules, "chumpy.ch", None)
    with pytest.raises(ImportError):
        import chumpy  # noqa: F401


def test_fake_pickle_really_references_chumpy(fake_mano):
    raw = fake_mano[0].read_bytes()
    assert b"chumpy.ch\nCh" in raw and b"csc_matrix" in raw


def test_load_arrays_without_chumpy(fake_mano, no_chumpy):
    pkl, expected = fake_mano
    arrays = load_mano_arrays(pkl)
    for key in ("v_template", "J_regressor", "weights", "shapedirs", "posedirs", "hands_mean"):
        np.testing.assert_array_equal(arrays[key], expected[key], err_msg=key)
    np.testing.assert_array_equal(arrays["f"], expected["f"])
    assert arrays["f"].dtype == np.int64 and arrays["f"].shape == (1538, 3)


def test_mano_model_interface(fake_mano, no_chumpy):
    pkl, expected = fake_mano
    mano = load_mano(pkl)
    assert mano.num_vertices == 778 and mano.num_faces == 1538
    assert mano.faces.dtype == np.int64
    assert mano.joint_regressor.shape == (21, 778)
    assert mano.skin_weights.shape == (778, 16) and mano.num_pose_params == 45
    assert len(mano.topology_hash) == 16 and mano.edges.shape[1] == 2
    assert isinstance(mano, HandModelLike)
    # Our 21 rows are MANO's 16 regressor rows and the 5 tip vertices, reordered.
    stacked = np.concatenate([expected["J_regressor"], np.eye(778)[list(MANO_TIP_VERTEX_IDS)]])
    np.testing.assert_array_equal(mano.joint_regressor, stacked[MANO16_TIPS_TO_OURS])
    np.testing.assert_array_equal(mano.parents, [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0,
                                                 13, 14])  # fmt: skip


def test_mano_forward(fake_mano, no_chumpy):
    pkl, expected = fake_mano
    mano = load_mano(pkl)
    v0 = expected["v_template"]
    rest = mano.forward(np.zeros((2, 45)))
    np.testing.assert_allclose(rest.vertices[0], v0, atol=1e-12)
    np.testing.assert_allclose(rest.joints[1], mano.joint_regressor @ v0, atol=1e-12)
    np.testing.assert_allclose(rest.skeleton, rest.joints, atol=1e-12)
    betas = np.zeros((1, 10))
    betas[0, 3] = 2.0
    shaped = mano.forward(np.zeros((1, 45)), shape=betas)
    np.testing.assert_allclose(shaped.vertices[0], v0 + 2.0 * expected["shapedirs"][..., 3])
    # Rotating MANO joint 1 (index1) moves its part rigidly about the joint; the wrist's
    # part stays.
    pose = np.zeros((1, 45))
    pose[0, 0:3] = [0.1, -0.2, 0.5]
    bent = mano.forward(pose).vertices[0]
    labels = expected["labels"]
    joint1 = expected["J_regressor"][1] @ v0
    r = axis_angle_to_matrix(pose[0, 0:3])
    part = labels == 1
    np.testing.assert_allclose(bent[part], (v0[part] - joint1) @ r.T + joint1, atol=1e-12)
    np.testing.assert_allclose(bent[labels == 0], v0[labels == 0], atol=1e-12)
    np.testing.assert_allclose(bent[labels == 4], v0[labels == 4], atol=1e-12)
    # Global rotation about the root joint, then translation.
    rot, trans = np.array([[0.3, 0.2, -0.1]]), np.array([[0.1, 0.0, 0.5]])
    moved = mano.forward(np.zeros((1, 45)), global_rot=rot, trans=trans).vertices[0]
    root = expected["J_regressor"][0] @ v0
    want = (v0 - root) @ axis_angle_to_matrix(rot[0]).T + root + trans[0]
    np.testing.assert_allclose(moved, want, atol=1e-12)
    # With MANO's own convention, pose zero is the mean pose.
    meaned = load_mano(pkl, flat_hand_mean=False)
    np.testing.assert_allclose(
        meaned.forward(np.zeros((1, 45))).vertices,
        mano.forward(expected["hands_mean"][None]).vertices,
        atol=1e-12,
    )
    with pytest.raises(ShapeError, match=r"pose expected shape \(B, 45\)"):
        mano.forward(np.zeros((1, 48)))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_pickle_calling_os_system(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil(marker)}, protocol=2))
    with pytest.raises(ModelFileError, match=r"forbidden global (posix|nt|os)\.system"):
        load_mano(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (pickle.dumps({"x": eval}, protocol=2), "forbidden global"),  # builtins.eval
        (pickle.dumps(Path("/"), protocol=2), "forbidden global"),
        (pickle.dumps([1, 2, 3], protocol=2), "expected a dict"),
        (pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2), "v_template"),
        (b"\x80\x02}q\x00(X", "expected a valid pickle"),  # truncated
    ],
)
def test_refuses_other_bad_files(tmp_path, payload, text):
    path = tmp_path / "bad.pkl"
    path.write_bytes(payload)
    with pytest.raises(ModelFileError, match=text):
        load_mano(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="MANO file expected at"):
        load_mano(tmp_path / "nope.pkl")
