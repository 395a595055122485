"""FreiHAND reader on a small fixture written in FreiHAND's layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_hand_mesh.data import FreiHANDReader
from stereo_hand_mesh.errors import ConfigError, DataError

N_LABELS, VERSIONS = 3, 4


def _write_freihand(root: Path, split: str = "training", versions: int = VERSIONS) -> dict:
    rng = np.random.default_rng(0)
    labels = {
        "K": [
            [[float(f), 0.0, 112.0], [0.0, float(f), 112.0], [0.0, 0.0, 1.0]]
            for f in rng.uniform(400, 600, N_LABELS)
        ],
        "xyz": (rng.normal(size=(N_LABELS, 21, 3)) * 0.05 + [0, 0, 0.6]).tolist(),
        "verts": (rng.normal(size=(N_LABELS, 778, 3)) * 0.05 + [0, 0, 0.6]).tolist(),
        "mano": rng.normal(size=(N_LABELS, 1, 61)).tolist(),
        "scale": rng.uniform(0.02, 0.04, N_LABELS).tolist(),
    }
    for kind, value in labels.items():
        (root / f"{split}_{kind}.json").write_text(json.dumps(value))
    (root / split / "rgb").mkdir(parents=True)
    (root / split / "mask").mkdir(parents=True)
    images = []
    for i in range(N_LABELS * versions):
        img = np.full((224, 224, 3), (i * 20) % 256, np.uint8)
        img[:, :, 1] = 7  # distinguishes R from B after the BGR round trip
        cv2.imwrite(str(root / split / "rgb" / f"{i:08d}.jpg"), img[:, :, ::-1])
        images.append(img)
    for i in range(N_LABELS):
        mask = np.zeros((224, 224), np.uint8)
        mask[50 + i : 150, 60:160] = 255
        cv2.imwrite(str(root / split / "mask" / f"{i:08d}.jpg"), mask)
    return {"labels": labels, "images": images}


def test_reads_samples_and_repeats_labels(tmp_path: Path) -> None:
    fixture = _write_freihand(tmp_path)
    reader = FreiHANDReader(tmp_path)
    assert len(reader) == N_LABELS * VERSIONS
    assert reader.num_labels == N_LABELS and reader.num_versions == VERSIONS
    assert reader.has_ground_truth and reader.has_vertices
    for i in (0, 2, 3, 7, 11):
        s = reader[i]
        label = i % N_LABELS
        assert s.index == i and reader.label_index(i) == label
        assert s.image.shape == (224, 224, 3) and s.image.dtype == np.uint8
        # JPEG is lossy: compare loosely, but the channel order must be RGB.
        assert abs(int(s.image[100, 100, 0]) - (i * 20) % 256) <= 3
        assert abs(int(s.image[100, 100, 1]) - 7) <= 3
        np.testing.assert_allclose(s.K, fixture["labels"]["K"][label])
        np.testing.assert_allclose(s.joints, fixture["labels"]["xyz"][label])
        np.testing.assert_allclose(s.vertices, fixture["labels"]["verts"][label], atol=1e-6)
        assert s.vertices.shape == (778, 3) and s.joints.shape == (21, 3)
        np.testing.assert_allclose(s.mano, np.asarray(fixture["labels"]["mano"][label])[0])
        assert s.scale == pytest.approx(fixture["labels"]["scale"][label])
        assert s.mask is not None and s.mask.dtype == np.bool_
        assert s.mask[100, 100] and not s.mask[10, 10]


def test_vertices_optional(tmp_path: Path) -> None:
    _write_freihand(tmp_path)
    assert FreiHANDReader(tmp_path, load_vertices=False)[0].vertices is None
    (tmp_path / "training_verts.json").unlink()
    (tmp_path / "training_mano.json").unlink()
    s = FreiHANDReader(tmp_path)[5]
    assert s.vertices is None and s.mano is None and s.joints is not None


def test_evaluation_split_without_labels(tmp_path: Path) -> None:
    _write_freihand(tmp_path, split="evaluation", versions=1)
    (tmp_path / "evaluation_xyz.json").unlink()
    (tmp_path / "evaluation_verts.json").unlink()
    (tmp_path / "evaluation_mano.json").unlink()
    reader = FreiHANDReader(tmp_path, split="evaluation")
    assert len(reader) == N_LABELS and not reader.has_ground_truth
    s = reader[-1]
    assert s.index == N_LABELS - 1 and s.joints is None and not s.has_ground_truth


def test_mismatched_list_lengths(tmp_path: Path) -> None:
    fixture = _write_freihand(tmp_path)
    (tmp_path / "training_xyz.json").write_text(json.dumps(fixture["labels"]["xyz"][:2]))
    with pytest.raises(DataError, match=r"training_xyz\.json expected 3 entries .*got 2"):
        FreiHANDReader(tmp_path)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"training/rgb"):
        FreiHANDReader(tmp_path)
    _write_freihand(tmp_path)
    (tmp_path / "training_K.json").unlink()
    with pytest.raises(DataError, match=r"training_K\.json; got no such file"):
        FreiHANDReader(tmp_path)
    with pytest.raises(ConfigError, match="split"):
        FreiHANDReader(tmp_path, split="test")


def test_missing_or_truncated_image(tmp_path: Path) -> None:
    _write_freihand(tmp_path)
    reader = FreiHANDReader(tmp_path)
    path = tmp_path / "training" / "rgb" / "00000004.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"could not decode JPEG .*00000004\.jpg"):
        reader[4]
    path.unlink()
    with pytest.raises(DataError, match=r"00000004\.jpg"):
        reader[4]


def test_image_count_must_be_a_multiple(tmp_path: Path) -> None:
    _write_freihand(tmp_path)
    (tmp_path / "training" / "rgb" / "00000011.jpg").unlink()
    with pytest.raises(DataError, match=r"expected a multiple of 3 images .*got 11"):
        FreiHANDReader(tmp_path)


def test_bad_entries(tmp_path: Path) -> None:
    _write_freihand(tmp_path)
    (tmp_path / "training_xyz.json").write_text(json.dumps([[[0.0, 0.0]] * 21] * N_LABELS))
    with pytest.raises(DataError, match=r"training_xyz\.json expected entries of shape \(21, 3\)"):
        FreiHANDReader(tmp_path)
    (tmp_path / "training_xyz.json").write_text("[[[0.0, 0.0")
    with pytest.raises(DataError, match=r"could not read FreiHAND file .*training_xyz\.json"):
        FreiHANDReader(tmp_path)
