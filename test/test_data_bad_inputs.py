"""Bad input acceptance: each broken input gives one clear DataError naming the file.

"One clear error" means: a DataError (a StereoHandMeshError), its message names the file,
no chained library exception is shown (``raise ... from None``), and it is raised from our
code, not from deep inside OpenCV, scipy or rosbags.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from stereo_hand_mesh.data import (
    STBReader,
    StereoSample,
    StereoSetReader,
    StereoSetWriter,
    StereoTopics,
    read_stereo_bag,
    rectified_stereo_camera_infos,
    write_stereo_bag,
)
from stereo_hand_mesh.errors import DataError, StereoHandMeshError


def _assert_one_clear_error(err: pytest.ExceptionInfo, path: Path) -> None:
    assert isinstance(err.value, DataError) and isinstance(err.value, StereoHandMeshError)
    assert str(path) in str(err.value)
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__
    printed = "".join(traceback.format_exception(err.value))
    assert "During handling of the above exception" not in printed
    last_frame = traceback.extract_tb(err.value.__traceback__)[-1]
    assert "stereo_hand_mesh" in last_frame.filename, last_frame


def _split(path: Path, count: int = 4) -> Path:
    rng = np.random.default_rng(0)
    infos = rectified_stereo_camera_infos(32, 24, 40.0, 40.0, 16.0, 12.0, 0.1)
    with StereoSetWriter(path, *infos, domain="source") as writer:
        for _ in range(count):
            writer.add(*rng.integers(0, 256, (2, 24, 32, 3), dtype=np.uint8))
    return path


def test_missing_file(tmp_path: Path) -> None:
    split = _split(tmp_path / "s")
    missing = split / "left" / "000001.png"
    missing.unlink()
    with pytest.raises(DataError) as err:
        StereoSetReader(split)[1]
    _assert_one_clear_error(err, missing)


def test_truncated_png(tmp_path: Path) -> None:
    split = _split(tmp_path / "s")
    png = split / "left" / "000003.png"
    png.write_bytes(png.read_bytes()[:-40])
    with pytest.raises(DataError) as err:
        StereoSetReader(split)[3]
    _assert_one_clear_error(err, png)
    assert str(err.value) == f"could not decode PNG {png} (truncated or corrupt)"


def test_mat_without_handpara(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    mat = tmp_path / "labels" / "B1Counting_BB.mat"
    scipy.io.savemat(str(mat), {"other": np.zeros((3, 21, 5))})
    with pytest.raises(DataError) as err:
        STBReader(tmp_path)
    _assert_one_clear_error(err, mat)
    assert "'handPara'" in str(err.value) and "['other']" in str(err.value)


def test_bag_without_expected_topics(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    infos = rectified_stereo_camera_infos(32, 24, 40.0, 40.0, 16.0, 12.0, 0.1)
    sample = StereoSample(*rng.integers(0, 256, (2, 24, 32, 3), dtype=np.uint8), *infos, index=0)
    bag = tmp_path / "bag"
    write_stereo_bag(bag, [sample], 10.0, topics=StereoTopics(left_image="cam0/image_raw"))
    with pytest.raises(DataError) as err:
        read_stereo_bag(bag)
    _assert_one_clear_error(err, bag)
    assert "missing ['left/image_rect']" in str(err.value)
    assert "/cam0/image_raw (sensor_msgs/msg/Image)" in str(err.value)


def test_directory_that_is_not_a_bag(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        read_stereo_bag(tmp_path / "photos")
    _assert_one_clear_error(err, tmp_path / "photos")
