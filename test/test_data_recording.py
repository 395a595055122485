"""Split recording (data/recording: the writer, crash recovery, the read side), on real files.

Real rosbag2 MCAP bags written by rosbags, CDR from the rosbags type store and from rclpy,
a recorder killed with SIGKILL in a child process, and a real tmpfs filled to the last byte.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import start_python

from stereo_hand_mesh.data import (
    RecorderSettings,
    SplitBagRecorder,
    StereoSample,
    bag_info,
    closed_splits,
    iter_stereo_samples,
    pair_messages_cdr,
    partial_splits,
    read_stereo_bag,
    recover_session,
    rectified_stereo_camera_infos,
    stereo_source_kind,
)
from stereo_hand_mesh.errors import ConfigError, DataError, RecordingStoppedError

W, H = 160, 120  # 57.6 kB per rgb8 image: a few pairs per split, a few splits per 3 MB
START = 1_700_000_000_000_000_000
STEP = 100_000_000  # 10 Hz header stamps
TOPICS = ("/left/image_rect", "/left/camera_info", "/right/image_rect", "/right/camera_info")


def _noise_pair(i: int) -> StereoSample:
    """Pair ``i``: reproducible noise images (incompressible, so sizes are predictable)."""
    rng = np.random.default_rng(i)
    left_info, right_info = rectified_stereo_camera_infos(W, H, 200.0, 200.0, 80.0, 60.0, 0.12)
    return StereoSample(
        left=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        right=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        left_info=left_info,
        right_info=right_info,
        index=i,
    )


def _record(recorder: SplitBagRecorder, count: int, first: int = 0) -> list[StereoSample]:
    pairs = [_noise_pair(i) for i in range(first, first + count)]
    for i, pair in enumerate(pairs, start=first):
        assert recorder.write_pair(START + i * STEP, pair_messages_cdr(pair, START + i * STEP))
    return pairs


def _settings(root: Path, **kw) -> RecorderSettings:
    return RecorderSettings(bag_dir=root, **{"min_free_mb": 0, **kw})


@pytest.fixture(scope="module")
def hand_pairs() -> list:
    """Four rendered stereo pairs of the hand (source domain, 320x240)."""
    from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
    from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs

    rig = rig_for_size(320, 240, None)
    return list(iter_synthetic_pairs(SynthSettings(domain="source", rig=rig), 4, seed=2))


# --------------------------------------------------------------------------------------------
# Splits and reading


def test_splits_close_on_time_and_each_is_a_complete_bag(tmp_path: Path) -> None:
    recorder = SplitBagRecorder(_settings(tmp_path / "bags", split_seconds=0.5))
    assert recorder.state == "idle" and not recorder.write_pair(START, [])
    session = recorder.start("run1")
    assert session == tmp_path / "bags" / "run1" and recorder.state == "recording"
    pairs = _record(recorder, 7)
    # While recording: split_0000 (stamps 0.0-0.4 s) is closed, split_0001 is open.
    assert closed_splits(session) == [session / "split_0000"]
    assert [p.name for p in partial_splits(session)] == [".split_0001.partial"]
    assert not (partial_splits(session)[0] / "split_0001" / "metadata.yaml").exists()
    assert [s.index for s in iter_stereo_samples(session)] == [0, 1, 2, 3, 4]
    pairs += _record(recorder, 5, first=7)
    summary = recorder.stop()
    assert recorder.stop() == summary  # idempotent

    splits = closed_splits(session)
    assert [p.name for p in splits] == ["split_0000", "split_0001", "split_0002"]
    assert partial_splits(session) == [] and not (session / ".recording.lock").exists()
    assert summary.state == "stopped" and summary.pairs_written == 12
    assert summary.splits == tuple(splits) and summary.splits_closed == 3
    assert summary.pairs_discarded == 0 and summary.open_split is None
    on_disk = sum(f.stat().st_size for s in splits for f in s.iterdir())
    assert summary.bytes_written == on_disk
    assert summary.as_dict()["splits_closed"] == 3

    for split, count, first in zip(splits, (5, 5, 2), (0, 5, 10)):
        meta = yaml.safe_load((split / "metadata.yaml").read_text())
        meta = meta["rosbag2_bagfile_information"]
        assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
        assert meta["relative_file_paths"] == [f"{split.name}.mcap"]
        info = bag_info(split)
        assert sorted(info.topics) == sorted(TOPICS)
        assert all(t.count == count for t in info.topics.values())
        assert info.start_ns == START + first * STEP
        assert info.end_ns == START + (first + count - 1) * STEP
        got = list(read_stereo_bag(split))
        assert [s.stamp_ns for s in got] == [START + (first + k) * STEP for k in range(count)]
        for s in got:
            want = pairs[(s.stamp_ns - START) // STEP]
            np.testing.assert_array_equal(s.left, want.left)
            np.testing.assert_array_equal(s.right, want.right)
            np.testing.assert_array_equal(s.right_info.P, want.right_info.P)

    assert stereo_source_kind(session) == "rosbag2_recording"
    whole = list(iter_stereo_samples(session))
    assert [s.index for s in whole] == list(range(12))
    assert [s.stamp_ns for s in whole] == [START + i * STEP for i in range(12)]
    for s, want in zip(whole, pairs):
        np.testing.assert_array_equal(s.left, want.left)


def test_recording_root_reads_every_session_in_name_order(tmp_path: Path) -> None:
    root = tmp_path / "bags"
    recorder = SplitBagRecorder(_settings(root, split_seconds=0.3))
    recorder.start("b_second")
    second = _record(recorder, 2, first=10)
    recorder.stop()
    recorder.start("a_first")
    first = _record(recorder, 4)
    recorder.stop()
    (root / "notes").mkdir()  # other directories are ignored
    assert stereo_source_kind(root) == "rosbag2_recordings"
    got = list(iter_stereo_samples(root))
    assert [s.index for s in got] == list(range(6))
    for s, want in zip(got, first + second):
        np.testing.assert_array_equal(s.left, want.left)
    # A session started twice without a name gets a fresh directory each time.
    a = recorder.start()
    recorder.stop()
    b = recorder.start()
    recorder.stop()
    assert a != b and a.name.startswith("rec_") and a.name.endswith("Z")


def test_adaptation_crops_load_from_a_recording(tmp_path: Path, hand_pairs: list) -> None:
    """adapt and eval build their crops with load_crop_set: a session works as a bag does."""
    from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
    from stereo_hand_mesh.data.synth import as_stereo_sample
    from stereo_hand_mesh.train.crops import load_crop_set

    infos = rig_for_size(320, 240, None).camera_infos()
    recorder = SplitBagRecorder(_settings(tmp_path, split_seconds=0.2))
    session = recorder.start("hands")
    for i, pair in enumerate(hand_pairs):
        sample = as_stereo_sample(pair, i, *infos)
        recorder.write_pair(START + i * STEP, pair_messages_cdr(sample, START + i * STEP))
    assert recorder.stop().splits_closed == 2
    crops = load_crop_set(session, 64, ground_truth=False)
    assert len(crops) == 4 and crops.skipped == 0
    assert crops.index.tolist() == [0, 1, 2, 3]


def test_rclpy_serialized_messages_are_recorded_as_they_are(tmp_path: Path) -> None:
    """The node passes rclpy.serialization.serialize_message bytes: the same CDR."""
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    pair = _noise_pair(3)
    stamp = START + 123
    header = {
        side: Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=frame)
        for side, frame in (
            ("l", "stereo_left_optical_frame"),
            ("r", "stereo_right_optical_frame"),
        )
    }

    def image(rgb: np.ndarray, side: str) -> bytes:
        msg = Image(header=header[side], height=H, width=W, encoding="rgb8", step=W * 3)
        msg.data = rgb.tobytes()
        return serialize_message(msg)

    def info(fields, side: str) -> bytes:
        msg = CameraInfo(header=header[side], height=H, width=W)
        msg.distortion_model = fields.distortion_model
        msg.d = [float(v) for v in fields.D]
        msg.k = [float(v) for v in np.ravel(fields.K)]
        msg.r = [float(v) for v in np.ravel(fields.R)]
        msg.p = [float(v) for v in np.ravel(fields.P)]
        return serialize_message(msg)

    messages = [
        ("left/image_rect", "sensor_msgs/msg/Image", image(pair.left, "l")),
        ("left/camera_info", "sensor_msgs/msg/CameraInfo", info(pair.left_info, "l")),
        ("right/image_rect", "sensor_msgs/msg/Image", image(pair.right, "r")),
        ("right/camera_info", "sensor_msgs/msg/CameraInfo", info(pair.right_info, "r")),
    ]
    # The same CDR layout as our own serializer (byte for byte, except that rclpy leaves
    # alignment padding uninitialized).
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for (_, msgtype, theirs), (_, _, ours) in zip(messages, pair_messages_cdr(pair, stamp)):
        assert len(theirs) == len(ours)
        a, b = store.deserialize_cdr(theirs, msgtype), store.deserialize_cdr(ours, msgtype)
        assert a.header == b.header and a.height == b.height and a.width == b.width
    recorder = SplitBagRecorder(_settings(tmp_path))
    session = recorder.start("ros")
    assert recorder.write_pair(stamp, messages)
    recorder.stop()
    (got,) = list(iter_stereo_samples(session))
    assert got.stamp_ns == stamp and got.left_info.frame_id == "stereo_left_optical_frame"
    np.testing.assert_array_equal(got.left, pair.left)
    np.testing.assert_array_equal(got.right, pair.right)
    assert sorted(bag_info(session / "split_0000").topics) == sorted(TOPICS)


def test_bad_input_is_refused_and_recording_goes_on(tmp_path: Path) -> None:
    recorder = SplitBagRecorder(_settings(tmp_path))
    session = recorder.start("r")
    good = pair_messages_cdr(_noise_pair(0), START)
    for stamp, messages, match in (
        (-1, good, "stamp_ns expected an int >= 0"),
        (START, [], "non-empty sequence"),
        (START, [("/a", "sensor_msgs/msg/Nope", b"\0\1\0\0")], "expected a ROS 2 message type"),
        (START, [("/a", "sensor_msgs/msg/Image", "text")], "expected CDR bytes"),
        (START, [good[0], good[0]], "each topic once per pair"),
    ):
        with pytest.raises(DataError, match=match):
            recorder.write_pair(stamp, messages)
    assert recorder.recording and recorder.write_pair(START, good)
    with pytest.raises(DataError, match="start expected a stopped recorder"):
        recorder.start("other")
    recorder.stop()
    assert len(list(iter_stereo_samples(session))) == 1
    with pytest.raises(DataError, match="exists already"):
        recorder.start("r")


def test_max_pairs_stops_after_the_last_one(tmp_path: Path) -> None:
    recorder = SplitBagRecorder(_settings(tmp_path, max_pairs=3))
    session = recorder.start("m")
    _record(recorder, 3)
    assert recorder.state == "stopped: reached max_pairs 3"
    assert not recorder.write_pair(START + 10 * STEP, pair_messages_cdr(_noise_pair(9), START))
    assert len(list(iter_stereo_samples(session))) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split_seconds": 0.0}, "split_seconds expected a finite number > 0"),
        ({"split_seconds": float("nan")}, "split_seconds"),
        ({"storage": "sqlite3"}, "storage expected 'mcap'"),
        ({"min_free_mb": -1}, "min_free_mb expected a finite number >= 0"),
        ({"max_pairs": -2}, "max_pairs expected >= 0"),
        ({"max_pairs": 1.5}, "max_pairs expected an int"),
    ],
)
def test_settings_are_validated(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RecorderSettings(bag_dir=tmp_path, **kwargs)


def test_session_names_cannot_escape_the_root(tmp_path: Path) -> None:
    root = tmp_path / "bags"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    recorder = SplitBagRecorder(_settings(root))
    for name in ("../x", "a/b", "a\\b", str(tmp_path / "abs"), "..", ".", "", ".hidden"):
        with pytest.raises(ConfigError, match="plain directory name inside"):
            recorder.start(name)
    with pytest.raises(ConfigError, match="not split_NNNN"):
        recorder.start("split_0001")
    with pytest.raises(ConfigError, match="resolves to"):
        recorder.start("link")
    assert recorder.state == "idle"
    assert sorted(p.name for p in root.iterdir()) == ["link"]
    assert list((tmp_path / "outside").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags", "outside"]


# --------------------------------------------------------------------------------------------
# Crashes


_CRASHING_RECORDER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from test_data_recording import START, STEP, _noise_pair, _settings
from stereo_hand_mesh.data import SplitBagRecorder, pair_messages_cdr

root = Path(sys.argv[1])
busy = SplitBagRecorder(_settings(root, split_seconds=1.5))
busy.start("a_busy")
for i in range(42):  # splits 0 and 1 close with 15 pairs; 12 pairs (1.4 MB) into split 2
    busy.write_pair(START + i * STEP, pair_messages_cdr(_noise_pair(i), START + i * STEP))
quiet = SplitBagRecorder(_settings(root, split_seconds=1.5))
quiet.start("b_quiet")
for i in range(2):  # 2 pairs: still in memory, nothing of them on disk
    quiet.write_pair(START + i * STEP, pair_messages_cdr(_noise_pair(i), START + i * STEP))
print("READY", flush=True)
time.sleep(120)
"""


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigkill_mid_split_leaves_closed_splits_and_recovery_rebuilds_the_rest(
    tmp_path: Path,
) -> None:
    root = tmp_path / "bags"
    proc = start_python(_CRASHING_RECORDER, str(root), str(Path(__file__).parent))
    try:
        line = proc.stdout.readline()
        if line.strip() != "READY":
            _kill(proc)
            pytest.fail(f"recorder child expected READY; got {line!r}: {proc.stderr.read()}")
        busy, quiet = root / "a_busy", root / "b_quiet"
        # A live recorder's session is left alone.
        assert recover_session(root) == []
        assert len(partial_splits(busy)) == 1
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL

    # The closed splits are complete; the open ones are marked and skipped by readers.
    assert [p.name for p in closed_splits(busy)] == ["split_0000", "split_0001"]
    for split in closed_splits(busy):
        assert bag_info(split).topics["/left/image_rect"].count == 15
        assert len(list(read_stereo_bag(split))) == 15
    (partial,) = partial_splits(busy)
    assert partial.name == ".split_0002.partial"
    assert not (partial / "split_0002" / "metadata.yaml").exists()
    assert (partial / "split_0002" / "split_0002.mcap").stat().st_size > 2**20
    assert [s.index for s in iter_stereo_samples(busy)] == list(range(30))
    assert [p.name for p in partial_splits(quiet)] == [".split_0000.partial"]
    with pytest.raises(DataError, match=r"expected at least one closed split.*recover_session"):
        iter_stereo_samples(quiet)

    results = recover_session(root)
    by_session = {r.partial.parent.name: r for r in results}
    assert sorted(by_session) == ["a_busy", "b_quiet"]
    rebuilt = by_session["a_busy"]
    assert rebuilt.action == "recovered" and rebuilt.split == busy / "split_0002"
    assert rebuilt.messages % 4 == 0 and 4 * 5 <= rebuilt.messages < 4 * 12
    assert 0 <= rebuilt.dropped_messages < 4
    gone = by_session["b_quiet"]
    assert (
        gone.action == "discarded"
        and gone.split is None
        and "no complete stereo pair" in gone.reason
    )
    assert not rebuilt.partial.exists() and not gone.partial.exists()
    assert not (busy / ".recording.lock").exists()

    recovered = list(read_stereo_bag(busy / "split_0002"))
    assert len(recovered) == rebuilt.messages // 4
    for k, s in enumerate(recovered):
        assert s.stamp_ns == START + (30 + k) * STEP
        np.testing.assert_array_equal(s.left, _noise_pair(30 + k).left)
        np.testing.assert_array_equal(s.right, _noise_pair(30 + k).right)
    assert len(list(iter_stereo_samples(busy))) == 30 + len(recovered)
    assert sorted(p.name for p in quiet.iterdir()) == []
    assert recover_session(root) == []  # nothing left to do


def test_recovery_of_a_split_closed_just_before_the_crash(tmp_path: Path) -> None:
    """A crash between the writer's close and the rename, and a leftover of a finished
    rename: the first is renamed as it is, the second removed; closed splits untouched."""
    recorder = SplitBagRecorder(_settings(tmp_path, split_seconds=0.2))
    session = recorder.start("s")
    _record(recorder, 4)  # split_0000 (2 pairs), split_0001 (2 pairs)
    recorder.stop()
    before = (session / "split_0000" / "split_0000.mcap").read_bytes()
    # Closed, not renamed: as a recorder killed right after Writer.close leaves it.
    (session / ".split_0002.partial").mkdir()
    os.rename(session / "split_0001", session / ".split_0002.partial" / "split_0002")
    # Renamed, partial directory not yet removed.
    (session / ".split_0000.partial").mkdir()
    results = {r.partial.name: r for r in recover_session(session)}
    assert results[".split_0002.partial"].action == "recovered"
    assert results[".split_0002.partial"].messages == 8
    assert results[".split_0000.partial"].action == "discarded"
    assert [p.name for p in closed_splits(session)] == ["split_0000", "split_0002"]
    assert partial_splits(session) == []
    assert (session / "split_0000" / "split_0000.mcap").read_bytes() == before
    assert len(list(iter_stereo_samples(session))) == 4


def test_recovery_of_files_cut_anywhere_gives_a_prefix_of_complete_pairs(tmp_path: Path) -> None:
    """An MCAP split cut at any byte (what a crash leaves) is rebuilt into a readable bag of
    the first complete pairs, or removed; never a bag that readers reject."""
    recorder = SplitBagRecorder(_settings(tmp_path / "full", split_seconds=100.0, fsync=False))
    recorder.start("s")
    pairs = _record(recorder, 20)  # 2.3 MB: two 1 MiB chunks and the rest at close
    (split,) = recorder.stop().splits
    data = (split / "split_0000.mcap").read_bytes()
    previous = 0
    for cut in [*np.linspace(0, len(data) - 1, 23).astype(int).tolist(), len(data)]:
        session = tmp_path / f"cut_{cut}"
        bag = session / ".split_0000.partial" / "split_0000"
        bag.mkdir(parents=True)
        (bag / "split_0000.mcap").write_bytes(data[:cut])
        (result,) = recover_session(session)
        assert result.action in ("recovered", "discarded"), result
        got = list(iter_stereo_samples(session)) if result.action == "recovered" else []
        assert len(got) == result.messages // 4 >= previous, (cut, result)
        for k, sample in enumerate(got):
            assert sample.stamp_ns == START + k * STEP
            np.testing.assert_array_equal(sample.right, pairs[k].right)
        previous = len(got)
        assert partial_splits(session) == []
    assert previous == 20  # the whole file: every pair


# --------------------------------------------------------------------------------------------
# Disk space


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs (needs root and mount rights; skipped otherwise), unmounted after."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot mount a tmpfs to fill ({err})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (mount: {done.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _record_until_stopped(recorder: SplitBagRecorder) -> tuple[RecordingStoppedError, int]:
    for i in range(200):
        pair = _noise_pair(i % 8)
        try:
            recorder.write_pair(START + i * STEP, pair_messages_cdr(pair, START + i * STEP))
        except RecordingStoppedError as err:
            return err, i
    pytest.fail("recording did not stop on a full 3 MB file system")


@pytest.mark.parametrize(
    ("split_seconds", "per_split"),
    [
        (0.3, 3),  # 350 kB splits, held in memory: the disk fills while a split closes
        (1.0, 10),  # 1.2 MB splits: the disk fills while a 1 MiB chunk is written mid-split
    ],
)
def test_disk_full_stops_cleanly_and_keeps_the_closed_splits(
    tiny_fs: Path, split_seconds: float, per_split: int
) -> None:
    recorder = SplitBagRecorder(_settings(tiny_fs, split_seconds=split_seconds))
    session = recorder.start("full")
    err, at = _record_until_stopped(recorder)
    assert "disk full (ENOSPC" in str(err)
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.ENOSPC
    assert recorder.state.startswith("stopped: disk full (ENOSPC")
    # Raised once; afterwards writes are refused quietly.
    assert not recorder.write_pair(START + at * STEP, pair_messages_cdr(_noise_pair(0), START))
    summary = recorder.stop()
    assert summary.state == recorder.state and summary.open_split is None
    splits = closed_splits(session)
    assert len(splits) >= 2 and partial_splits(session) == []
    assert summary.pairs_written == per_split * len(splits)
    assert summary.pairs_written + summary.pairs_discarded == at  # the pairs accepted
    for split in splits:
        assert len(list(read_stereo_bag(split))) == per_split
    assert len(list(iter_stereo_samples(session))) == summary.pairs_written


def test_low_free_space_closes_the_split_and_stops(tiny_fs: Path) -> None:
    recorder = SplitBagRecorder(_settings(tiny_fs, split_seconds=0.3, min_free_mb=1.2))
    session = recorder.start("low")
    err, _ = _record_until_stopped(recorder)
    assert "low disk space" in str(err) and "min_free_mb 1.2" in str(err)
    assert recorder.state.startswith("stopped: low disk space")
    summary = recorder.stop()
    assert summary.pairs_discarded == 0 and partial_splits(session) == []
    assert len(list(iter_stereo_samples(session))) == summary.pairs_written > 0


def test_no_start_when_free_space_is_short_from_the_outset(tmp_path: Path) -> None:
    strict = SplitBagRecorder(RecorderSettings(bag_dir=tmp_path / "b", min_free_mb=1e12))
    with pytest.raises(DataError, match="could not start recording: low disk space"):
        strict.start()
    assert strict.state == "idle" and list((tmp_path / "b").iterdir()) == []
