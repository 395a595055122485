"""``stereo-hand-mesh infer --bag``: real bags (MCAP, sqlite3; raw and JPEG images) written
with the project's writer, run through the command, its JSON lines and MP4 read back."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_hand_mesh.cli import main
from stereo_hand_mesh.data.bags import (
    DEFAULT_START_NS,
    compressed_image_msg,
    rosbags_typestore,
    write_stereo_bag,
)
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

RATE_HZ = 30.0
PAIRS = 3
#: As the pipeline's own tests on these renders (test_pipeline_keypoints).
MEAN_JOINT_M = 0.025


@pytest.fixture(scope="module")
def motion() -> list[StereoSample]:
    """Consecutive frames 1/30 s apart of the simulator's motion that the networks find
    (seed 2, as test_pipeline_keypoints), with their true joints."""
    import torch

    from stereo_hand_mesh.data.motion import HandMotion, HandMotionSettings, render_motion_frame
    from stereo_hand_mesh.data.synth import SynthSettings
    from stereo_hand_mesh.hand import template_hand

    hand = template_hand()
    faces = torch.from_numpy(hand.faces.astype(np.int64))
    settings = SynthSettings(domain="source")
    motion = HandMotion(hand, settings, HandMotionSettings(), seed=2)
    left_info, right_info = settings.rig.camera_infos()
    frames = [render_motion_frame(motion, k, k / RATE_HZ, faces) for k in range(PAIRS)]
    return [
        StereoSample(f.left, f.right, left_info, right_info, index=k, joints=f.joints)
        for k, f in enumerate(frames)
    ]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _video_frames(path: Path) -> tuple[int, int, int]:
    """(frames decoded, width, height) of a video, read back by OpenCV."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"OpenCV cannot open the written video {path}"
    count = 0
    size = (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count += 1
        size = (frame.shape[1], frame.shape[0])
    cap.release()
    return count, *size


def _infer(bag: Path, *extra: str) -> int:
    return main(["infer", "--bag", str(bag), "--backend", "onnxruntime", "--no-progress", *extra])


def _assert_tracked_and_near(lines: list[dict], motion: list[StereoSample]) -> None:
    for line, sample in zip(lines, motion, strict=True):
        assert line["found"] and not line["skipped"], line["reason"]
        joints = np.asarray(line["joints"])
        assert joints.shape == (21, 3)
        assert np.asarray(line["keypoints_px"]).shape == (2, 21, 2)
        err = _mean_error(line, sample)
        assert err < MEAN_JOINT_M, f"pair {line['index']}: {1e3 * err:.1f} mm"
        # Every hand is listed; the one hand here is the top-level one, one id throughout.
        (hand,) = line["hands"]
        assert hand["joints"] == line["joints"]
        assert hand["hand_id"] == lines[0]["hands"][0]["hand_id"]
    # Tracking as the node does: the palm detector runs on the first pair only.
    assert "detect" in lines[0]["timings_ms"]
    assert all("detect" not in line["timings_ms"] for line in lines[1:]), [
        sorted(line["timings_ms"]) for line in lines
    ]


def test_mcap_bag_to_json_lines_video_and_summary(tmp_path, motion, capsys) -> None:
    bag = tmp_path / "bag"
    write_stereo_bag(bag, motion, RATE_HZ, storage="mcap")
    out, video, summary = tmp_path / "out.jsonl", tmp_path / "v" / "o.mp4", tmp_path / "s.json"
    rc = _infer(bag, "--jsonl", str(out), "--video", str(video), "--json", str(summary))
    assert rc == 0
    lines = _lines(out)
    assert [line["index"] for line in lines] == list(range(PAIRS))
    assert [line["stamp_ns"] for line in lines] == [
        DEFAULT_START_NS + round(k * 1e9 / RATE_HZ) for k in range(PAIRS)
    ]
    assert all(line["frame_id"] == motion[0].left_info.frame_id for line in lines)
    assert all(line["latency_ms"] > 0 for line in lines)
    _assert_tracked_and_near(lines, motion)
    assert _video_frames(video) == (PAIRS, 640, 480)
    result = json.loads(summary.read_text())
    assert (result["pairs"], result["found"], result["skipped"]) == (PAIRS, PAIRS, 0)
    assert sum(result["hands_meshed_by_side"].values()) == PAIRS
    median = float(np.median([line["latency_ms"] for line in lines]))
    assert result["latency_ms"]["median"] == pytest.approx(median)
    printed = capsys.readouterr().out
    assert f"{PAIRS} pairs, {PAIRS} found, 0 skipped; median latency {median:.1f} ms" in printed


def _corrupt_one_image(src: Path, dst: Path, topic_suffix: str, which: int) -> None:
    """Copy a bag, truncating the JPEG of the ``which``-th message on the image topic ending
    in ``topic_suffix`` (as a recording cut mid-message would hold)."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    store = rosbags_typestore()
    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conns = {
            c.id: w.add_connection(c.topic, c.msgtype, typestore=store) for c in reader.connections
        }
        seen = 0
        for conn, log_ns, raw in reader.messages():
            if conn.topic.endswith(topic_suffix):
                if seen == which:
                    msg = store.deserialize_cdr(raw, conn.msgtype)
                    msg.data = msg.data[: len(msg.data) // 2]
                    raw = store.serialize_cdr(msg, conn.msgtype)
                seen += 1
            w.write(conns[conn.id], log_ns, raw)


def test_sqlite3_jpeg_bag_skips_the_pair_with_a_corrupt_image(tmp_path, motion) -> None:
    whole = tmp_path / "whole"
    write_stereo_bag(whole, motion, RATE_HZ, storage="sqlite3", image_format="jpeg")
    bag = tmp_path / "bag"
    _corrupt_one_image(whole, bag, "right/image_rect/compressed", which=1)
    out, video = tmp_path / "out.jsonl", tmp_path / "o.mp4"
    # The default topics find the '/compressed' twins; the explicit name works too.
    rc = _infer(bag, "--jsonl", str(out), "--video", str(video), "--no-smoothing")
    assert rc == 0
    lines = _lines(out)
    assert [line["skipped"] for line in lines] == [False, True, False]
    bad = lines[1]
    assert not bad["found"] and bad["joints"] is None
    assert "/right/image_rect/compressed" in bad["reason"] and "truncated" in bad["reason"]
    for line, sample in ((lines[0], motion[0]), (lines[2], motion[2])):
        assert line["found"], line["reason"]
        err = _mean_error(line, sample)
        assert err < MEAN_JOINT_M, f"pair {line['index']}: {1e3 * err:.1f} mm"
    assert _video_frames(video)[0] == PAIRS  # the skipped pair keeps its frame
    explicit = tmp_path / "explicit.jsonl"
    rc = _infer(
        whole, "--left-topic", "/left/image_rect/compressed", "--right-topic",
        "right/image_rect/compressed", "--jsonl", str(explicit),
    )  # fmt: skip
    assert rc == 0
    _assert_tracked_and_near(_lines(explicit), motion)


def _raw_view(rectified: np.ndarray, info: CameraInfoFields) -> np.ndarray:
    """What the raw camera of ``info`` sees: each raw pixel samples the rectified pixel its
    K, D, R, P send it to."""
    h, w = info.height, info.width
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    raw_px = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
    rect_px = cv2.undistortPoints(raw_px, info.K, info.D, R=info.R, P=info.P[:, :3])
    rect_px = rect_px.reshape(h, w, 2).astype(np.float32)
    return cv2.remap(rectified, rect_px[..., 0], rect_px[..., 1], cv2.INTER_LINEAR)


def _raw_info(info: CameraInfoFields, angle: float) -> CameraInfoFields:
    """A raw (plumb_bob) camera whose rectification gives ``info``'s rectified view: its own
    K, barrel distortion and a small rotation about the optical axis and the vertical."""
    from dataclasses import replace

    from scipy.spatial.transform import Rotation

    k = info.P[:, :3].copy()
    k[0, 0] *= 1.03
    k[0, 2] += 6.0
    rot = Rotation.from_rotvec([0.0, angle, 2 * angle]).as_matrix()
    return replace(
        info, distortion_model="plumb_bob", D=np.array([-0.12, 0.03, 0.0, 0.0, 0.0]), K=k, R=rot
    )


def test_rectify_raw_views_as_the_node_does(tmp_path, motion) -> None:
    left_info, right_info = (
        _raw_info(motion[0].left_info, 0.02),
        _raw_info(motion[0].right_info, -0.015),
    )
    raw = [
        StereoSample(
            _raw_view(s.left, left_info),
            _raw_view(s.right, right_info),
            left_info,
            right_info,
            index=s.index,
            joints=s.joints,
        )
        for s in motion
    ]
    assert np.abs(raw[0].left.astype(int) - motion[0].left).mean() > 3  # the views differ
    bag = tmp_path / "raw"
    write_stereo_bag(bag, raw, RATE_HZ, storage="mcap", image_format="png")
    out = tmp_path / "rect.jsonl"
    assert _infer(bag, "--rectify", "--jsonl", str(out)) == 0
    lines = _lines(out)
    _assert_tracked_and_near(lines, motion)
    rectified_m = np.mean([_mean_error(line, s) for line, s in zip(lines, motion, strict=True)])
    # Control: the same raw views taken as rectified (their P, no remap) land far off (seen:
    # 8 mm rectified, 77 mm not), so the agreement above is the rectification's doing.
    naive = tmp_path / "naive.jsonl"
    assert _infer(bag, "--jsonl", str(naive)) == 0
    errs = [
        _mean_error(line, s)
        for line, s in zip(_lines(naive), motion, strict=True)
        if line["found"]
    ]
    assert not errs or np.mean(errs) > max(MEAN_JOINT_M, 4 * rectified_m), (errs, rectified_m)


def _mean_error(line: dict, sample: StereoSample) -> float:
    """Mean joint distance of a JSON line's joints to the sample's true joints, metres."""
    return float(np.linalg.norm(np.asarray(line["joints"]) - sample.joints, axis=1).mean())


def test_missing_topic_names_the_bag_topics(tmp_path, motion, capsys) -> None:
    bag = tmp_path / "bag"
    write_stereo_bag(bag, motion[:1], RATE_HZ)
    out = tmp_path / "out.jsonl"
    assert _infer(bag, "--left-topic", "zed/left/image_rect_color", "--jsonl", str(out)) == 1
    err = capsys.readouterr().err
    assert "missing ['zed/left/image_rect_color']" in err
    assert "/left/image_rect (sensor_msgs/msg/Image)" in err and "/right/camera_info" in err
    assert not out.exists()


def test_corrupt_bag_is_a_clear_error(tmp_path, motion, capsys) -> None:
    bag = tmp_path / "bag"
    write_stereo_bag(bag, motion[:1], RATE_HZ, storage="mcap")
    (mcap,) = bag.glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[:-200])  # cut short, as a recording killed mid-write
    assert _infer(bag, "--jsonl", str(tmp_path / "o.jsonl")) == 1
    err = capsys.readouterr().err
    assert f"could not open rosbag2 bag {bag}" in err and "Traceback" not in err
    assert _infer(tmp_path / "nothing", "--jsonl", str(tmp_path / "o.jsonl")) == 1
    assert "no such file or directory" in capsys.readouterr().err


def test_a_bag_corrupt_midway_keeps_the_lines_written(tmp_path, motion, capsys) -> None:
    bag = tmp_path / "bag"
    write_stereo_bag(bag, motion, RATE_HZ, storage="sqlite3", camera_info_once=True)
    (db,) = bag.glob("*.db3")
    data = bytearray(db.read_bytes())
    at = int(len(data) * 0.8)  # inside the last pair's images
    data[at : at + 4096] = bytes(4096)
    db.write_bytes(bytes(data))
    out, video = tmp_path / "out.jsonl", tmp_path / "o.mp4"
    assert _infer(bag, "--jsonl", str(out), "--video", str(video)) == 1
    err = capsys.readouterr().err
    assert f"rosbag2 bag {bag} could not be read further" in err and "Traceback" not in err
    lines = _lines(out)  # every line whole
    assert 1 <= len(lines) < PAIRS, len(lines)
    assert [line["index"] for line in lines] == list(range(len(lines)))
    assert all(line["found"] for line in lines)
    assert _video_frames(video)[0] == len(lines)  # the video is closed and readable


def test_a_video_that_cannot_open_fails_before_processing(tmp_path, motion, capsys) -> None:
    bag = tmp_path / "bag"
    write_stereo_bag(bag, motion[:1], RATE_HZ)
    taken = tmp_path / "taken.mp4"
    taken.mkdir()  # a directory where the video should go
    out = tmp_path / "out.jsonl"
    assert _infer(bag, "--video", str(taken), "--jsonl", str(out)) == 1
    assert "--video expected a writable MP4 file" in capsys.readouterr().err
    assert not out.exists()  # nothing was processed
    assert _infer(bag, "--video", str(tmp_path / "o.avi")) == 1
    assert "--video expected a .mp4 file name" in capsys.readouterr().err


def test_bag_and_single_pair_options_do_not_mix(tmp_path, capsys) -> None:
    assert main(["infer", "--bag", str(tmp_path), "--left", "l.png"]) == 1
    assert "single-pair options" in capsys.readouterr().err
    assert main(["infer", "--bag", str(tmp_path)]) == 1
    assert "at least one output" in capsys.readouterr().err
    assert main(["infer", "--left", "l.png", "--jsonl", "o.jsonl"]) == 1
    assert "missing ['--right', '--left-info', '--right-info', '--json']" in (
        capsys.readouterr().err
    )


def test_compressed_image_msg_round_trip() -> None:
    from stereo_hand_mesh.data.image_io import decode_compressed_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    msg = compressed_image_msg(rgb, DEFAULT_START_NS, "cam", codec="png")
    assert msg.format == "bgr8; png compressed bgr8"
    np.testing.assert_array_equal(decode_compressed_rgb(msg.data, msg.format), rgb)
