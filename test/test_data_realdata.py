"""The real stereo folder reader (stereo_hand_mesh/data/realdata.py) on folders written here."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from realdata_files import (
    BASELINE_M,
    CX_LEFT,
    CX_RIGHT,
    H,
    W,
    frame_image,
    frame_joints,
    stereo_infos,
    write_labels,
    write_real_folder,
)

from stereo_hand_mesh.data import (
    RealStereoFolder,
    StereoSetWriter,
    is_real_stereo_folder,
    iter_stereo_samples,
    stereo_source_kind,
    write_image_png,
    write_real_stereo_folder,
)
from stereo_hand_mesh.errors import CameraInfoError, DataError
from stereo_hand_mesh.hand.joints import JOINT_NAMES


def test_round_trip(tmp_path: Path) -> None:
    path = write_real_folder(tmp_path / "f", frames=(0, 1, 2, 3), inside=(True, False, True, True))
    folder = RealStereoFolder.open(path)
    assert folder.frames == (0, 1, 2, 3) and len(folder) == 4 and folder.has_labels
    assert folder.rig.baseline == pytest.approx(BASELINE_M, rel=1e-12)
    assert (folder.rig.left.cx, folder.rig.right.cx) == (CX_LEFT, CX_RIGHT)
    assert folder.rig.left.frame_id == "stereo_left_optical_frame"
    for frame in folder.frames:
        left, right = folder.read_pair(frame)
        assert left.dtype == np.uint8 and left.shape == (H, W, 3)
        np.testing.assert_array_equal(left, frame_image(frame, "left"))
        np.testing.assert_array_equal(right, frame_image(frame, "right"))
        joints = folder.joints_m(frame)
        expected = frame_joints(frame)
        unknown = {1: 4, 2: 0}
        if frame in unknown:  # the rows written with a NaN joint
            expected[unknown[frame]] = np.nan
        np.testing.assert_array_equal(joints, expected)
    assert [folder.inside(f) for f in folder.frames] == [True, False, True, True]
    # A sample's joints are complete or absent; partial labels stay with joints_m.
    samples = list(folder.iter_samples())
    assert [s.index for s in samples] == [0, 1, 2, 3]
    assert [s.joints is not None for s in samples] == [True, False, False, True]
    np.testing.assert_array_equal(samples[0].joints, frame_joints(0))
    with pytest.raises(DataError, match="expected a frame number"):
        folder.read_pair(9)


def test_folder_without_labels_and_unlabelled_frames(tmp_path: Path) -> None:
    folder = RealStereoFolder.open(write_real_folder(tmp_path / "a", frames=(3, 4), labels=False))
    assert folder.frames == (3, 4) and not folder.has_labels
    assert folder.joints_m(3) is None and folder.inside(4) is None
    # Frames 5 and 6 have images but no gt.npz row: unlabelled, not an error.
    path = write_real_folder(tmp_path / "b", frames=(4, 5, 6), labelled=(4,))
    folder = RealStereoFolder.open(path)
    assert folder.has_labels and folder.joints_m(5) is None and folder.inside(6) is None
    assert folder.inside(4) is True
    # load_labels=False never opens gt.npz, even a broken one.
    (path / "gt.npz").write_bytes(b"not a zip")
    assert not RealStereoFolder.open(path, load_labels=False).has_labels


def test_source_kind_and_samples(tmp_path: Path) -> None:
    path = write_real_folder(tmp_path / "f", frames=(0, 1))
    assert is_real_stereo_folder(path) and stereo_source_kind(path) == "real_stereo_folder"
    samples = list(iter_stereo_samples(path))
    assert len(samples) == 2 and samples[0].joints is not None
    assert all(s.joints is None for s in iter_stereo_samples(path, load_ground_truth=False))
    np.testing.assert_array_equal(samples[1].right, frame_image(1, "right"))


def test_interrupted_synthetic_split_is_not_a_real_folder(tmp_path: Path) -> None:
    """A synthetic split whose writing stopped has left/, right/ and the YAML files but no
    meta.json; its mask folders tell it from a real folder."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), dtype=bool)
    with (
        pytest.raises(RuntimeError),
        StereoSetWriter(tmp_path / "x", *stereo_infos(), domain="s") as w,
    ):
        w.add(image, image, (mask, mask))
        raise RuntimeError("renderer crashed")
    assert not is_real_stereo_folder(tmp_path / "x")
    with pytest.raises(DataError, match="real stereo folder"):
        stereo_source_kind(tmp_path / "x")


def _break(path: Path, how: str) -> None:
    """Spoil one thing of a good folder (frames 0-2, all labelled)."""
    if how == "no_left_yaml":
        (path / "left.yaml").unlink()
    elif how == "no_right_yaml":
        (path / "right.yaml").unlink()
    elif how == "left_without_right":
        (path / "right" / "000001.png").unlink()
    elif how == "right_without_left":
        shutil.copy(path / "right" / "000002.png", path / "right" / "000007.png")
    elif how == "image_size":
        write_image_png(path / "right" / "000002.png", np.zeros((H, W + 8, 3), np.uint8))
    elif how == "nan_camera_info":
        text = (path / "right.yaml").read_text()
        (path / "right.yaml").write_text(text.replace("-9.6", ".nan"))
    elif how == "zero_baseline":
        text = (path / "right.yaml").read_text()
        (path / "right.yaml").write_text(text.replace("-9.6", "0.0"))
    elif how == "short_inside":
        write_labels(path / "gt.npz", [0, 1, 2], inside=[True, True])
    elif how == "short_joints":
        write_labels(path / "gt.npz", [0, 1, 2], joints_m=np.zeros((2, 21, 3)))
    elif how == "short_uv":
        write_labels(path / "gt.npz", [0, 1, 2], uv_left=np.zeros((1, 21, 2)))
    elif how == "joint_order":
        names = np.asarray([JOINT_NAMES[0], *reversed(JOINT_NAMES[1:])])
        write_labels(path / "gt.npz", [0, 1, 2], joint_names=names)
    elif how == "labels_without_images":
        write_labels(path / "gt.npz", [0, 1, 2, 5])
    elif how == "no_joints_key":
        write_labels(path / "gt.npz", [0, 1, 2])
        with np.load(path / "gt.npz") as npz:
            kept = {k: npz[k] for k in npz.files if k != "joints_m"}
        np.savez(path / "gt.npz", **kept)
    elif how == "labels_size":
        write_labels(path / "gt.npz", [0, 1, 2], size=(W * 2, H * 2))
    elif how == "bad_name":
        shutil.copy(path / "left" / "000000.png", path / "left" / "frame_a.png")
    elif how == "corrupt_npz":
        (path / "gt.npz").write_bytes(b"PK\x03\x04 broken")
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "error", "pattern"),
    [
        ("no_left_yaml", CameraInfoError, r"expected the camera_info file .*left\.yaml"),
        ("no_right_yaml", CameraInfoError, r"expected the camera_info file .*right\.yaml"),
        ("left_without_right", DataError, r"left/000001\.png expected its right image"),
        ("right_without_left", DataError, r"right/000007\.png expected its left image"),
        ("image_size", DataError, r"right/000002\.png expected 96x72 .*right\.yaml.*got 104x72"),
        ("nan_camera_info", CameraInfoError, r"right\.yaml.*expected finite values"),
        ("zero_baseline", CameraInfoError, r"left\.yaml and .*right\.yaml.*baseline"),
        ("short_inside", DataError, r"gt\.npz 'inside' expected bool shape \(3,\).*got bool"),
        ("short_joints", DataError, r"gt\.npz 'joints_m' expected float shape \(3, 21, 3\)"),
        ("short_uv", DataError, r"gt\.npz 'uv_left' expected 3 rows.*got shape \(1, 21, 2\)"),
        ("joint_order", DataError, r"gt\.npz 'joint_names' expected our joint order"),
        ("labels_without_images", DataError, r"gt\.npz labels frame 5: expected its images"),
        ("no_joints_key", DataError, r"gt\.npz expected an array 'joints_m'"),
        ("labels_size", DataError, r"gt\.npz expected labels for 96x72 images.*got .*192x144"),
        ("bad_name", DataError, r"frame_a\.png expected a frame-number name"),
        ("corrupt_npz", DataError, r"could not read labels .*gt\.npz"),
    ],
)
def test_bad_input(tmp_path: Path, how: str, error: type[Exception], pattern: str) -> None:
    path = write_real_folder(tmp_path / "f", frames=(0, 1, 2))
    RealStereoFolder.open(path)  # good before it is spoilt
    _break(path, how)
    with pytest.raises(error, match=pattern):
        RealStereoFolder.open(path)


def test_image_checked_again_when_read(tmp_path: Path) -> None:
    """A JPEG under a .png name has no PNG header to check at open; reading it checks its
    size against the camera_info."""
    import cv2

    path = write_real_folder(tmp_path / "f", frames=(0,))
    ok, data = cv2.imencode(".jpg", np.zeros((H + 2, W, 3), np.uint8))
    assert ok
    (path / "left" / "000000.png").write_bytes(data.tobytes())
    folder = RealStereoFolder.open(path)
    with pytest.raises(DataError, match=r"left/000000\.png expected 96x72 .*got 96x74"):
        folder.read_pair(0)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="got no folder there"):
        RealStereoFolder.open(tmp_path / "nothing")
    path = write_real_folder(tmp_path / "f", frames=(), labels=False)
    with pytest.raises(DataError, match="at least one image pair"):
        RealStereoFolder.open(path)


def _two_hand_labels(path: Path, frames: list[int], **override: np.ndarray) -> np.ndarray:
    """Write a gt.npz with two hand slots (right, left); return its (M, 2, 21, 3) joints."""
    hands = np.stack([np.stack([frame_joints(f), frame_joints(f + 100)]) for f in frames])
    hands[1, 1] = np.nan  # frame 1: no left hand
    arrays = {
        "joints_m": hands,
        "inside": np.array([[True, True], [True, False], [False, True]]),
        "hand_sides": np.array(["right", "left"]),
        **override,
    }
    write_labels(path, frames, **arrays)
    return hands


def test_several_hands_per_frame(tmp_path: Path) -> None:
    path = write_real_folder(tmp_path / "f", frames=(0, 1, 2), labels=False)
    hands = _two_hand_labels(path / "gt.npz", [0, 1, 2])
    folder = RealStereoFolder.open(path)
    assert folder.hand_sides == ("right", "left")
    np.testing.assert_array_equal(folder.hands_m(0), hands[0])
    np.testing.assert_array_equal(folder.joints_m(2), hands[2, 0])  # the first slot's
    assert folder.hands_inside(1).tolist() == [True, False]
    # A frame is inside when every hand it labels is: frame 1's left hand is absent.
    assert [folder.inside(f) for f in (0, 1, 2)] == [True, True, False]
    assert RealStereoFolder.open(write_real_folder(tmp_path / "g")).hand_sides == ("",)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"hand_sides": np.array(["right", "up"])}, r"'hand_sides' expected 2 of 'right'"),
        ({"hand_sides": np.array(["right"])}, r"'hand_sides' expected 2 of 'right'"),
        ({"inside": np.ones(3, dtype=bool)}, r"'inside' expected bool shape \(3, 2\)"),
        ({"joints_m": np.zeros((3, 2, 20, 3))}, r"'joints_m' expected float shape \(3, 21, 3\)"),
    ],
)
def test_several_hands_bad_labels(tmp_path: Path, override: dict, pattern: str) -> None:
    path = write_real_folder(tmp_path / "f", frames=(0, 1, 2), labels=False)
    _two_hand_labels(path / "gt.npz", [0, 1, 2], **override)
    with pytest.raises(DataError, match=pattern):
        RealStereoFolder.open(path)


def test_write_real_stereo_folder_round_trip(tmp_path: Path) -> None:
    left_info, right_info = stereo_infos(W, H)
    pairs = [(frame_image(f, "left", W, H), frame_image(f, "right", W, H)) for f in range(3)]
    hands = np.stack([np.stack([frame_joints(f), frame_joints(f + 100)]) for f in range(2)])
    hands[1, 1] = np.nan  # frame 1: no left hand
    hands[0, 1, 3] = [5.0, 0.0, 0.6]  # frame 0: the left hand reaches out of the images
    path = write_real_stereo_folder(
        tmp_path / "sim", left_info, right_info, pairs, hands, ("right", "left"), "test"
    )
    folder = RealStereoFolder.open(path)
    assert folder.frames == (0, 1, 2) and folder.hand_sides == ("right", "left")
    np.testing.assert_array_equal(folder.read_pair(2)[1], pairs[2][1])
    np.testing.assert_allclose(folder.hands_m(0), hands[0])
    assert folder.hands_m(2) is None  # unlabelled
    assert folder.hands_inside(0).tolist() == [True, False]
    assert folder.hands_inside(1).tolist() == [True, False]  # absent: not inside
    assert folder.inside(1) is True  # every labelled hand of frame 1 is inside
    with pytest.raises(DataError, match="expected a new folder"):
        write_real_stereo_folder(path, left_info, right_info, pairs)
    with pytest.raises(DataError, match=r"hands_m expected shape \(M <= 3 frames"):
        write_real_stereo_folder(tmp_path / "bad", left_info, right_info, pairs, hands[0])
