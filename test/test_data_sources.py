"""iter_stereo_samples dispatch, and the import weight of stereo_hand_mesh.data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stereo_hand_mesh.data import (
    StereoSetReader,
    StereoSetWriter,
    iter_stereo_samples,
    read_stereo_bag,
    rectified_stereo_camera_infos,
    stereo_source_kind,
    write_stereo_bag,
)
from stereo_hand_mesh.errors import DataError

W, H = 32, 16


@pytest.fixture
def split(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    infos = rectified_stereo_camera_infos(W, H, 40.0, 40.0, 16.0, 8.0, 0.1)
    with StereoSetWriter(tmp_path / "split", *infos, domain="target") as writer:
        for _ in range(3):
            writer.add(
                rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                annotation={"joints": rng.normal(size=(21, 3)) + np.array([0.0, 0.0, 1.0])},
            )
    return tmp_path / "split"


def test_dispatch_on_split_and_bags(tmp_path: Path, split: Path) -> None:
    assert stereo_source_kind(split) == "stereo_set"
    from_split = list(iter_stereo_samples(split))
    assert len(from_split) == 3 and all(s.joints is not None for s in from_split)

    # A split copied into a bag reads back identically, through a directory or a file.
    write_stereo_bag(tmp_path / "bag", StereoSetReader(split), 15.0)
    assert stereo_source_kind(tmp_path / "bag") == "rosbag2"
    (mcap_file,) = (tmp_path / "bag").glob("*.mcap")
    for source in (tmp_path / "bag", mcap_file):
        from_bag = list(iter_stereo_samples(source))
        assert len(from_bag) == 3
        for a, b in zip(from_split, from_bag):
            np.testing.assert_array_equal(a.left, b.left)
            np.testing.assert_array_equal(a.right, b.right)
            np.testing.assert_allclose(a.joints, b.joints)


def test_ground_truth_never_read_for_adaptation(tmp_path: Path, split: Path) -> None:
    assert all(s.joints is None for s in iter_stereo_samples(split, load_ground_truth=False))
    write_stereo_bag(tmp_path / "bag", StereoSetReader(split), 15.0)
    assert all(
        not s.has_ground_truth
        for s in iter_stereo_samples(tmp_path / "bag", load_ground_truth=False)
    )
    (split / "annotations.npz").unlink()
    assert all(not s.has_ground_truth for s in iter_stereo_samples(split))


def test_unknown_source(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match=r"expected a stereo split directory .* or a rosbag2 bag"):
        iter_stereo_samples(tmp_path / "d")
    with pytest.raises(DataError, match="got nothing there"):
        iter_stereo_samples(tmp_path / "none")


def test_errors_raised_on_open_not_on_first_sample(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    with Writer(tmp_path / "other", version=9) as writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        msg = store.types["std_msgs/msg/String"](data="hello")
        writer.write(conn, 1, store.serialize_cdr(msg, msg.__msgtype__))
    with pytest.raises(DataError, match=r"missing .*the bag has \['/chatter"):
        iter_stereo_samples(tmp_path / "other")  # raised here, before any next()
    # A bag with the topics but no messages is valid and empty.
    write_stereo_bag(tmp_path / "empty", [], 10.0)
    assert list(read_stereo_bag(tmp_path / "empty")) == []


def test_import_is_light() -> None:
    """Importing the data package adds neither rosbags, torch, OpenCV nor scipy by itself."""
    code = (
        "import sys\n"
        "import stereo_hand_mesh.geometry.camera_info, stereo_hand_mesh.hand.joints\n"
        "before = set(sys.modules)\n"
        "import stereo_hand_mesh.data, stereo_hand_mesh.train.metrics\n"
        "heavy = ('rosbags', 'torch', 'cv2', 'scipy', 'rclpy')\n"
        "added = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(added & set(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_frame_selection_on_every_kind_of_source(tmp_path: Path, split: Path) -> None:
    from realdata_files import write_real_folder

    from stereo_hand_mesh.data.sources import parse_frame_slice

    write_stereo_bag(tmp_path / "bag", StereoSetReader(split), 15.0)
    real = write_real_folder(tmp_path / "real", frames=(3, 4, 7, 8), labels=False)
    for source, numbers in (
        (split, [0, 1, 2]),
        (tmp_path / "bag", [0, 1, 2]),
        (real, [3, 4, 7, 8]),
    ):
        whole = list(iter_stereo_samples(source, load_ground_truth=False))
        assert [s.index for s in whole] == numbers, source
        for text in ("1:", ":2", "1:2", "0:100", "5:"):
            frames = parse_frame_slice(text)
            picked = list(iter_stereo_samples(source, load_ground_truth=False, frames=frames))
            # Positions in the source's order, as a Python slice of the whole list; samples
            # keep their index.
            assert [s.index for s in picked] == numbers[frames], (source, text)
            for a, b in zip(picked, whole[frames]):
                np.testing.assert_array_equal(a.left, b.left)


@pytest.mark.parametrize(
    "text, want",
    [("0:38", slice(0, 38)), ("38:", slice(38, None)), (":5", slice(None, 5)),
     (" 2 : 4 ", slice(2, 4)), ("", None), (None, None)],
)  # fmt: skip
def test_parse_frame_slice(text: str | None, want: slice | None) -> None:
    from stereo_hand_mesh.data.sources import frame_slice_text, parse_frame_slice

    got = parse_frame_slice(text)
    assert got == want
    if got is not None:
        assert parse_frame_slice(frame_slice_text(got)) == got


@pytest.mark.parametrize(
    "bad, message",
    [("38", "START:STOP"), ("a:b", "START:STOP"), ("-1:5", "START:STOP"), ("1:2:3", "START:STOP"),
     ("5:2", "STOP > START"), ("3:3", "STOP > START")],
)  # fmt: skip
def test_bad_frame_selections_say_what_was_expected(split: Path, bad: str, message: str) -> None:
    from stereo_hand_mesh.data.sources import parse_frame_slice
    from stereo_hand_mesh.errors import ConfigError

    with pytest.raises(ConfigError, match=f"frames expected .*{message}.*; got"):
        parse_frame_slice(bad)
    for frames, why in ((slice(-2, None), "non-negative"), (slice(0, 4, 2), "step")):
        with pytest.raises(ConfigError, match=why):
            iter_stereo_samples(split, frames=frames)
    with pytest.raises(ConfigError, match="expected a slice or None; got str"):
        iter_stereo_samples(split, frames="1:2")  # type: ignore[arg-type]
