"""Synthetic stereo split format: writer, reader, image I/O and failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stereo_hand_mesh.data import (
    GROUND_TRUTH_FIELDS,
    StereoSetReader,
    StereoSetWriter,
    read_image_rgb,
    read_mask,
    rectified_stereo_camera_infos,
    write_image_png,
    write_mask_png,
)
from stereo_hand_mesh.errors import DataError, ShapeError

W, H, V = 48, 32, 30


@pytest.fixture
def infos():
    return rectified_stereo_camera_infos(W, H, 60.0, 60.0, 24.0, 16.0, 0.12)


def _frame(rng: np.random.Generator) -> dict:
    return {
        "left": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "right": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "masks": (rng.random((H, W)) > 0.5, rng.random((H, W)) > 0.5),
        "annotation": {
            "joints": rng.normal(size=(21, 3)) * 0.05 + [0, 0, 0.5],
            "vertices": rng.normal(size=(V, 3)) * 0.05 + [0, 0, 0.5],
            "uv_left": rng.uniform(0, W, (21, 2)),
            "uv_right": rng.uniform(0, W, (21, 2)),
            "visibility": rng.random(21) > 0.3,
            "vertices_uv_left": rng.uniform(0, W, (V, 2)),
            "vertices_uv_right": rng.uniform(0, W, (V, 2)),
        },
    }


def _write_set(path: Path, infos, count: int = 3, masks: bool = True, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    frames = [_frame(rng) for _ in range(count)]
    with StereoSetWriter(
        path,
        *infos,
        domain="source",
        seed=seed,
        generator={"lighting": "random", "count": count},
        topology_hash="abc123",
        created_by="stereo-hand-mesh synth --count 3",
    ) as writer:
        for f in frames:
            writer.add(f["left"], f["right"], f["masks"] if masks else None, f["annotation"])
    return frames


def test_round_trip(tmp_path: Path, infos) -> None:
    frames = _write_set(tmp_path / "train", infos)
    reader = StereoSetReader(tmp_path / "train")
    assert len(reader) == 3 and reader.has_ground_truth and reader.has_masks
    assert reader.ground_truth_fields == GROUND_TRUTH_FIELDS
    for i, f in enumerate(frames):
        s = reader[i]
        assert s.index == i and s.stamp_ns is None
        np.testing.assert_array_equal(s.left, f["left"])
        np.testing.assert_array_equal(s.right, f["right"])
        assert s.left.dtype == np.uint8 and s.left.shape == (H, W, 3)
        np.testing.assert_array_equal(s.mask_left, f["masks"][0])
        np.testing.assert_array_equal(s.mask_right, f["masks"][1])
        for key, value in f["annotation"].items():
            got = getattr(s, key)
            if key == "visibility":
                np.testing.assert_array_equal(got, value)
            else:
                assert got.dtype == np.float64
                np.testing.assert_allclose(got, value, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(s.left_info.P, infos[0].P)
        np.testing.assert_array_equal(s.right_info.P, infos[1].P)
        assert s.right_info.frame_id == infos[1].frame_id
    assert reader[-1].index == 2
    assert reader.ground_truth_array("joints").shape == (3, 21, 3)
    assert [s.index for s in reader] == [0, 1, 2]
    with pytest.raises(IndexError):
        reader[3]


def test_on_disk_layout_and_meta(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=2)
    names = sorted(p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*"))
    assert names == [
        "annotations.npz",
        "left",
        "left.yaml",
        "left/000000.png",
        "left/000001.png",
        "mask_left",
        "mask_left/000000.png",
        "mask_left/000001.png",
        "mask_right",
        "mask_right/000000.png",
        "mask_right/000001.png",
        "meta.json",
        "right",
        "right.yaml",
        "right/000000.png",
        "right/000001.png",
    ]
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["format"] == "stereo_hand_mesh/stereo_set" and meta["format_version"] == 1
    assert meta["count"] == 2 and meta["domain"] == "source" and meta["seed"] == 0
    assert meta["hand_topology_hash"] == "abc123" and meta["num_vertices"] == V
    assert meta["generator"] == {"lighting": "random", "count": 2}
    assert meta["created_by"] == "stereo-hand-mesh synth --count 3"
    with np.load(tmp_path / "s" / "annotations.npz") as npz:
        assert npz["joints"].shape == (2, 21, 3) and npz["joints"].dtype == np.float32
        assert npz["visibility"].dtype == np.bool_
    # Images on disk are RGB: OpenCV (BGR) sees the channels reversed.
    import cv2

    bgr = cv2.imread(str(tmp_path / "s" / "left" / "000000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(bgr[:, :, ::-1], StereoSetReader(tmp_path / "s")[0].left)
    mask = cv2.imread(str(tmp_path / "s" / "mask_left" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}


def test_reader_without_annotations(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=2, masks=False)
    (tmp_path / "s" / "annotations.npz").unlink()
    reader = StereoSetReader(tmp_path / "s")
    assert not reader.has_ground_truth and not reader.has_masks
    s = reader[1]
    assert not s.has_ground_truth and s.mask_left is None
    assert all(getattr(s, k) is None for k in GROUND_TRUTH_FIELDS)
    assert reader.ground_truth_array("joints") is None


def test_reader_with_stripped_annotations(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=2)
    np.savez(tmp_path / "s" / "annotations.npz", unrelated=np.zeros(2))
    assert not StereoSetReader(tmp_path / "s").has_ground_truth


def test_ground_truth_not_opened_when_not_asked(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=2)
    # A corrupt annotation file is never touched when ground truth is not wanted.
    (tmp_path / "s" / "annotations.npz").write_bytes(b"not a zip")
    reader = StereoSetReader(tmp_path / "s", load_ground_truth=False)
    assert not reader.has_ground_truth and reader[0].joints is None
    with pytest.raises(DataError, match=r"annotations\.npz \(truncated or corrupt\)"):
        StereoSetReader(tmp_path / "s")


def test_set_without_annotations_written(tmp_path: Path, infos) -> None:
    rng = np.random.default_rng(1)
    with StereoSetWriter(tmp_path / "t", *infos, domain="target") as writer:
        f = _frame(rng)
        writer.add(f["left"], f["right"])
    assert not (tmp_path / "t" / "annotations.npz").exists()
    reader = StereoSetReader(tmp_path / "t")
    assert len(reader) == 1 and not reader.has_ground_truth


def test_partial_annotation_subset(tmp_path: Path, infos) -> None:
    rng = np.random.default_rng(2)
    with StereoSetWriter(tmp_path / "p", *infos, domain="source") as writer:
        for _ in range(2):
            f = _frame(rng)
            writer.add(f["left"], f["right"], annotation={"joints": f["annotation"]["joints"]})
    s = StereoSetReader(tmp_path / "p")[0]
    assert s.joints is not None and s.vertices is None and s.has_ground_truth


def test_interrupted_write_is_not_readable(tmp_path: Path, infos) -> None:
    rng = np.random.default_rng(3)
    f = _frame(rng)
    with pytest.raises(RuntimeError), StereoSetWriter(tmp_path / "x", *infos, domain="s") as w:
        w.add(f["left"], f["right"], f["masks"], f["annotation"])
        raise RuntimeError("renderer crashed")
    assert not (tmp_path / "x" / "meta.json").exists()
    assert not (tmp_path / "x" / "annotations.npz").exists()
    assert not list((tmp_path / "x").glob(".*tmp"))
    with pytest.raises(DataError, match=r"meta\.json.*interrupted"):
        StereoSetReader(tmp_path / "x")


def test_writer_refuses_existing_split_unless_overwrite(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=3)
    with pytest.raises(DataError, match="not empty"):
        StereoSetWriter(tmp_path / "s", *infos, domain="source")
    _write_set(tmp_path / "o", infos, count=1)
    rng = np.random.default_rng(9)
    with StereoSetWriter(tmp_path / "s", *infos, domain="source", overwrite=True) as writer:
        f = _frame(rng)
        writer.add(f["left"], f["right"])
    reader = StereoSetReader(tmp_path / "s")
    assert len(reader) == 1 and not reader.has_ground_truth and not reader.has_masks
    assert not (tmp_path / "s" / "left" / "000002.png").exists()


def test_writer_checks_inputs(tmp_path: Path, infos) -> None:
    rng = np.random.default_rng(4)
    f = _frame(rng)
    writer = StereoSetWriter(tmp_path / "w", *infos, domain="source")
    with pytest.raises(ShapeError, match=r"left_rgb expected shape \(32, 48, 3\)"):
        writer.add(f["left"][:10], f["right"])
    with pytest.raises(ShapeError, match="uint8"):
        writer.add(f["left"].astype(np.float32), f["right"])
    with pytest.raises(ShapeError, match=r"annotation 'joints' expected shape \(21, 3\)"):
        writer.add(f["left"], f["right"], annotation={"joints": np.zeros((20, 3))})
    with pytest.raises(DataError, match="unknown"):
        writer.add(f["left"], f["right"], annotation={"pose": np.zeros(3)})
    writer.add(f["left"], f["right"], f["masks"], {"joints": f["annotation"]["joints"]})
    with pytest.raises(DataError, match="expected keys"):
        writer.add(f["left"], f["right"], f["masks"], {"vertices": np.zeros((V, 3))})
    with pytest.raises(DataError, match="masks present"):
        writer.add(f["left"], f["right"], None, {"joints": f["annotation"]["joints"]})
    writer.close()
    assert len(StereoSetReader(tmp_path / "w")) == 1


def test_missing_image_names_file(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=4)
    (tmp_path / "s" / "right" / "000002.png").unlink()
    reader = StereoSetReader(tmp_path / "s")
    with pytest.raises(DataError) as err:
        reader[2]
    assert str(tmp_path / "s" / "right" / "000002.png") in str(err.value)


def test_truncated_png_names_file(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=4)
    path = tmp_path / "s" / "left" / "000003.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    reader = StereoSetReader(tmp_path / "s")
    reader[2]  # the others are fine
    with pytest.raises(DataError) as err:
        reader[3]
    assert str(err.value) == f"could not decode PNG {path} (truncated or corrupt)"


def test_garbage_png_names_file(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=1)
    path = tmp_path / "s" / "mask_right" / "000000.png"
    data = bytearray(path.read_bytes())
    data[20:60] = b"\x00" * 40  # header and data chunk damaged, IEND intact
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"could not decode PNG .*mask_right/000000\.png"):
        StereoSetReader(tmp_path / "s")[0]


def test_image_size_must_match_camera_info(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=1)
    write_image_png(tmp_path / "s" / "left" / "000000.png", np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(DataError, match=r"000000\.png expected 48x32 .*got 50x32"):
        StereoSetReader(tmp_path / "s")[0]


def test_annotation_length_must_match_count(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=3)
    np.savez(tmp_path / "s" / "annotations.npz", joints=np.zeros((2, 21, 3), np.float32))
    with pytest.raises(DataError, match=r"'joints' expected shape \(3, 21, 3\); got \(2, 21, 3\)"):
        StereoSetReader(tmp_path / "s")


def test_bad_meta_and_missing_yaml(tmp_path: Path, infos) -> None:
    _write_set(tmp_path / "s", infos, count=1)
    meta_path = tmp_path / "s" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(DataError, match="format_version <= 1; got 99"):
        StereoSetReader(tmp_path / "s")
    meta_path.write_text("{truncated")
    with pytest.raises(DataError, match=r"could not read .*meta\.json"):
        StereoSetReader(tmp_path / "s")
    meta_path.write_text(json.dumps(meta))
    (tmp_path / "s" / "right.yaml").unlink()
    with pytest.raises(DataError, match=r"right\.yaml"):
        StereoSetReader(tmp_path / "s")
    with pytest.raises(DataError, match="no directory"):
        StereoSetReader(tmp_path / "missing")


def test_image_io_conversions(tmp_path: Path) -> None:
    import cv2

    rgb = np.random.default_rng(5).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_image_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "a.png"), rgb)
    gray = rgb[:, :, 0]
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "g.png"), np.dstack([gray] * 3))
    bgra = np.dstack([rgb[:, :, ::-1], np.full((5, 7), 9, np.uint8)])
    cv2.imwrite(str(tmp_path / "a4.png"), bgra)
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "a4.png"), rgb)
    cv2.imwrite(str(tmp_path / "d.png"), np.zeros((4, 4), np.uint16))
    with pytest.raises(DataError, match="expected 8-bit"):
        read_image_rgb(tmp_path / "d.png")
    mask = np.eye(6, dtype=bool)
    write_mask_png(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        read_image_rgb(tmp_path / "e.png")
    _, jpg = cv2.imencode(".jpg", rgb)
    (tmp_path / "t.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    with pytest.raises(DataError, match=r"could not decode JPEG .*t\.jpg \(truncated"):
        read_image_rgb(tmp_path / "t.jpg")
