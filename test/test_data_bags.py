"""rosbag2 stereo bags written and read with rosbags (MCAP and sqlite3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from stereo_hand_mesh.data import (
    StereoSample,
    StereoTopics,
    bag_info,
    read_stereo_bag,
    rectified_stereo_camera_infos,
    rgb_from_image_buffer,
    write_stereo_bag,
)
from stereo_hand_mesh.errors import ConfigError, DataError, EncodingError

W, H = 40, 24
RATE = 20.0
START = 1_700_000_000_000_000_000


def _samples(count: int, seed: int = 0, with_gt: bool = True) -> list[StereoSample]:
    rng = np.random.default_rng(seed)
    left_info, right_info = rectified_stereo_camera_infos(W, H, 50.0, 50.0, 20.0, 12.0, 0.08)
    return [
        StereoSample(
            left=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            right=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            left_info=left_info,
            right_info=right_info,
            index=i,
            joints=rng.normal(size=(21, 3)) * 0.05 + [0, 0, 0.5] if with_gt else None,
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("info_once", [False, True])
def test_round_trip_identical_pixels(tmp_path: Path, storage: str, info_once: bool) -> None:
    samples = _samples(5)
    bag = tmp_path / "bag"
    n = write_stereo_bag(bag, samples, RATE, storage=storage, camera_info_once=info_once)
    assert n == 5
    assert (bag / "metadata.yaml").is_file()
    got = list(read_stereo_bag(bag))
    assert len(got) == 5
    for i, (want, s) in enumerate(zip(samples, got)):
        assert s.index == i
        assert s.stamp_ns == START + i * 50_000_000
        np.testing.assert_array_equal(s.left, want.left)
        np.testing.assert_array_equal(s.right, want.right)
        assert s.left.dtype == np.uint8 and s.left.shape == (H, W, 3)
        np.testing.assert_array_equal(s.left_info.P, want.left_info.P)
        np.testing.assert_array_equal(s.right_info.P, want.right_info.P)
        np.testing.assert_array_equal(s.right_info.K, want.right_info.K)
        assert s.left_info.frame_id == "stereo_left_optical_frame"
        assert s.right_info.frame_id == "stereo_right_optical_frame"
        np.testing.assert_array_equal(s.joints, want.joints)


def test_metadata_and_bag_info(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    write_stereo_bag(bag, _samples(4), RATE, camera_info_once=True)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    assert {t["topic_metadata"]["name"] for t in meta["topics_with_message_count"]} == {
        "/left/image_rect",
        "/left/camera_info",
        "/right/image_rect",
        "/right/camera_info",
        "/sim/gt_joints",
    }
    info = bag_info(bag)
    assert info.storage == "mcap" and info.message_count == 4 * 3 + 2
    assert info.topics["/left/image_rect"].count == 4
    assert info.topics["/left/camera_info"].count == 1
    assert info.topics["/sim/gt_joints"].msgtype == "geometry_msgs/msg/PoseArray"
    assert info.start_ns == START and info.end_ns == START + 3 * 50_000_000
    assert info.duration_s == pytest.approx(0.15)
    assert info.as_dict()["topics"]["/right/image_rect"] == {
        "msgtype": "sensor_msgs/msg/Image",
        "count": 4,
    }


def test_ground_truth_message_layout(tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader

    samples = _samples(2)
    bag = tmp_path / "bag"
    write_stereo_bag(bag, samples, RATE, storage="sqlite3", left_frame_id="cam_l")
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == "/sim/gt_joints"]
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(conns)]
    assert len(msgs) == 2
    msg = msgs[1]
    assert msg.header.frame_id == "cam_l"
    assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == START + 50_000_000
    assert len(msg.poses) == 21
    np.testing.assert_array_equal(
        [[p.position.x, p.position.y, p.position.z] for p in msg.poses], samples[1].joints
    )
    assert all(p.orientation.w == 1.0 and p.orientation.x == 0.0 for p in msg.poses)


def test_no_ground_truth_read_when_not_asked(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    write_stereo_bag(bag, _samples(2), RATE)
    assert all(s.joints is None for s in read_stereo_bag(bag, load_ground_truth=False))
    bag2 = tmp_path / "bag2"
    write_stereo_bag(bag2, _samples(2), RATE, gt_topic=None)
    assert "/sim/gt_joints" not in bag_info(bag2).topics
    assert all(not s.has_ground_truth for s in read_stereo_bag(bag2))


def test_custom_topics_and_namespaced_recording(tmp_path: Path) -> None:
    topics = StereoTopics(
        left_image="zed/left/image_rect_color",
        left_info="zed/left/camera_info",
        right_image="zed/right/image_rect_color",
        right_info="zed/right/camera_info",
    )
    bag = tmp_path / "bag"
    write_stereo_bag(bag, _samples(3), RATE, topics=topics)
    assert len(list(read_stereo_bag(bag, topics=topics))) == 3
    # Namespaced topics are found from the relative names when unambiguous.
    relative = StereoTopics(
        left_image="left/image_rect_color",
        left_info="left/camera_info",
        right_image="right/image_rect_color",
        right_info="right/camera_info",
    )
    assert len(list(read_stereo_bag(bag, topics=relative))) == 3


def test_missing_topics_error_lists_both(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    topics = StereoTopics(left_image="cam/left", right_image="cam/right")
    write_stereo_bag(bag, _samples(1), RATE, topics=topics)
    with pytest.raises(DataError) as err:
        read_stereo_bag(bag)
    msg = str(err.value)
    assert str(bag) in msg
    assert "missing ['left/image_rect', 'right/image_rect']" in msg
    assert "/cam/left (sensor_msgs/msg/Image)" in msg and "/left/camera_info" in msg


def test_not_a_bag(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match=r"metadata\.yaml; got .*plain, which has none"):
        read_stereo_bag(tmp_path / "plain")
    with pytest.raises(DataError, match="no such file or directory"):
        bag_info(tmp_path / "nothing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"a \.mcap or \.db3 file"):
        read_stereo_bag(tmp_path / "x.txt")
    (tmp_path / "broken.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"could not open rosbag2 bag .*broken\.mcap"):
        read_stereo_bag(tmp_path / "broken.mcap")
    bag = tmp_path / "bag"
    write_stereo_bag(bag, _samples(1), RATE)
    (bag / "metadata.yaml").unlink()
    (storage_file,) = bag.glob("*.mcap")
    with pytest.raises(DataError, match=rf"{storage_file.name}.*reindex"):
        read_stereo_bag(bag)
    # The storage file alone is readable without metadata.yaml.
    assert len(list(read_stereo_bag(storage_file))) == 1


def test_writer_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rate_hz"):
        write_stereo_bag(tmp_path / "a", _samples(1), 0.0)
    with pytest.raises(ConfigError, match="storage"):
        write_stereo_bag(tmp_path / "a", _samples(1), 10.0, storage="rosbag1")
    write_stereo_bag(tmp_path / "a", _samples(1), 10.0)
    with pytest.raises(DataError, match="exists already"):
        write_stereo_bag(tmp_path / "a", _samples(1), 10.0)


# ---- bags recorded by other tools: messages written directly with rosbags -----------------


def _write_raw_bag(
    path: Path,
    storage: str,
    frames: list[tuple[int, int, np.ndarray, np.ndarray]],
    encoding: str,
    infos_at: list[int],
) -> None:
    """frames: (left stamp, right stamp, left pixels, right pixels) in ``encoding``."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    t = store.types
    left_info, right_info = rectified_stereo_camera_infos(W, H, 50.0, 50.0, 20.0, 12.0, 0.08)

    def header(ns: int, frame: str):
        return t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
            frame_id=frame,
        )

    def info_msg(info, ns, frame):
        return t["sensor_msgs/msg/CameraInfo"](
            header=header(ns, frame), height=H, width=W, distortion_model="plumb_bob",
            d=np.zeros(5), k=info.K.reshape(-1), r=info.R.reshape(-1), p=info.P.reshape(-1),
            binning_x=0, binning_y=0,
            roi=t["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
            ),
        )  # fmt: skip

    def image_msg(pixels: np.ndarray, ns: int, frame: str, pad: int = 4):
        rows = pixels.reshape(H, -1)
        padded = np.zeros((H, rows.shape[1] + pad), np.uint8)  # rows padded: step > width * c
        padded[:, : rows.shape[1]] = rows
        return t["sensor_msgs/msg/Image"](
            header=header(ns, frame), height=H, width=W, encoding=encoding, is_bigendian=0,
            step=padded.shape[1], data=padded.reshape(-1),
        )  # fmt: skip

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        c = {
            name: writer.add_connection(topic, msgtype, typestore=store)
            for name, topic, msgtype in (
                ("li", "/left/camera_info", "sensor_msgs/msg/CameraInfo"),
                ("ri", "/right/camera_info", "sensor_msgs/msg/CameraInfo"),
                ("l", "/left/image_rect", "sensor_msgs/msg/Image"),
                ("r", "/right/image_rect", "sensor_msgs/msg/Image"),
                ("other", "/rosout_like", "std_msgs/msg/String"),
            )
        }
        for k, (ls, rs, lp, rp) in enumerate(frames):
            if k in infos_at:
                msg = info_msg(left_info, ls, "l")
                writer.write(c["li"], ls, store.serialize_cdr(msg, msg.__msgtype__))
            string = t["std_msgs/msg/String"](data="x")
            writer.write(c["other"], ls, store.serialize_cdr(string, string.__msgtype__))
            # The right image is logged first: receive order need not be left-first.
            msg = image_msg(rp, rs, "r")
            writer.write(c["r"], rs + 1000, store.serialize_cdr(msg, msg.__msgtype__))
            msg = image_msg(lp, ls, "l")
            writer.write(c["l"], ls + 2000, store.serialize_cdr(msg, msg.__msgtype__))
            if k in infos_at:
                msg = info_msg(right_info, rs, "r")
                writer.write(c["ri"], rs + 3000, store.serialize_cdr(msg, msg.__msgtype__))


@pytest.mark.parametrize(
    ("encoding", "to_rgb"),
    [
        ("bgr8", lambda p: p[:, :, ::-1]),
        ("mono8", lambda p: np.repeat(p[:, :, None], 3, axis=2)),
        ("rgba8", lambda p: p[:, :, :3]),
        ("bgra8", lambda p: p[:, :, 2::-1]),
        ("rgb8", lambda p: p),
    ],
)
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_reads_other_encodings(tmp_path: Path, encoding: str, to_rgb, storage: str) -> None:
    rng = np.random.default_rng(7)
    shape = {"mono8": (H, W), "rgba8": (H, W, 4), "bgra8": (H, W, 4)}.get(encoding, (H, W, 3))
    frames = []
    for k in range(3):
        stamp = START + k * 33_000_000
        # Right stamps off by 1 ms on the last frame: paired through the slop.
        frames.append(
            (
                stamp,
                stamp + (1_000_000 if k == 2 else 0),
                rng.integers(0, 256, shape, dtype=np.uint8),
                rng.integers(0, 256, shape, dtype=np.uint8),
            )
        )
    bag = tmp_path / "bag"
    _write_raw_bag(bag, storage, frames, encoding, infos_at=[0])
    got = list(read_stereo_bag(bag))
    assert len(got) == 3
    for (ls, _, lp, rp), s in zip(frames, got):
        assert s.stamp_ns == ls
        np.testing.assert_array_equal(s.left, to_rgb(lp))
        np.testing.assert_array_equal(s.right, to_rgb(rp))
        assert s.left_info.frame_id == "l" and s.right_info.frame_id == "r"
        assert s.joints is None
    # Outside the slop the last pair is not formed.
    assert len(list(read_stereo_bag(bag, slop_s=0.0005))) == 2


def test_camera_info_logged_after_first_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    frames = [
        (START + k * 10**8, START + k * 10**8, *rng.integers(0, 256, (2, H, W, 3), np.uint8))
        for k in range(3)
    ]
    bag = tmp_path / "bag"
    # Only frame 1 carries camera_info: frame 0 uses that first one, frame 2 the latest.
    _write_raw_bag(bag, "mcap", frames, "rgb8", infos_at=[1])
    got = list(read_stereo_bag(bag))
    assert [s.stamp_ns for s in got] == [f[0] for f in frames]
    assert all(s.right_info.P[0, 3] == pytest.approx(-50.0 * 0.08) for s in got)


def test_unsupported_encoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    frames = [(START, START, *rng.integers(0, 256, (2, H, W * 2), np.uint8))]
    bag = tmp_path / "bag"
    _write_raw_bag(bag, "mcap", frames, "mono16", infos_at=[0])
    with pytest.raises(EncodingError, match=r"/left/image_rect at stamp .*got 'mono16'"):
        list(read_stereo_bag(bag))


def test_rgb_from_image_buffer_checks_size() -> None:
    with pytest.raises(EncodingError, match="step >= 12"):
        rgb_from_image_buffer(np.zeros(30, np.uint8), 3, 4, 10, "rgb8")
    with pytest.raises(EncodingError, match="got step 12 and 30 bytes"):
        rgb_from_image_buffer(np.zeros(30, np.uint8), 3, 4, 12, "rgb8")
    out = rgb_from_image_buffer(bytes(range(12)), 2, 2, 6, "bgr8")
    assert out[0, 0].tolist() == [2, 1, 0]


def test_camera_info_size_mismatch(tmp_path: Path) -> None:
    samples = _samples(1)
    small_l, small_r = rectified_stereo_camera_infos(W // 2, H, 50.0, 50.0, 10.0, 12.0, 0.08)
    bad = StereoSample(
        left=samples[0].left,
        right=samples[0].right,
        left_info=small_l,
        right_info=small_r,
        index=0,
    )
    write_stereo_bag(tmp_path / "bag", [bad], RATE)
    with pytest.raises(
        DataError, match="expected the camera_info size 20x24; got an image of 40x24"
    ):
        list(read_stereo_bag(tmp_path / "bag"))


def test_independent_readers_see_the_bag(tmp_path: Path) -> None:
    """The MCAP file reads with the mcap library and the sqlite3 one with sqlite3."""
    import sqlite3

    from mcap.reader import make_reader

    write_stereo_bag(tmp_path / "m", _samples(2), RATE)
    (mcap_file,) = (tmp_path / "m").glob("*.mcap")
    with mcap_file.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        channels = {c.topic: c for c in summary.channels.values()}
        schemas = {s.id: s for s in summary.schemas.values()}
        assert schemas[channels["/left/image_rect"].schema_id].name == "sensor_msgs/msg/Image"
        assert channels["/left/image_rect"].message_encoding == "cdr"
        assert summary.statistics.message_count == 2 * 5
        stamps = [m.log_time for _, _, m in reader.iter_messages(topics=["/right/image_rect"])]
    assert stamps == [START, START + 50_000_000]

    write_stereo_bag(tmp_path / "s", _samples(2), RATE, storage="sqlite3")
    (db_file,) = (tmp_path / "s").glob("*.db3")
    with sqlite3.connect(db_file) as db:
        topics = dict(db.execute("SELECT name, type FROM topics").fetchall())
        count = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert topics["/sim/gt_joints"] == "geometry_msgs/msg/PoseArray" and count == 10
