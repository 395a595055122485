"""Tests of the per-pair pipeline's parts: the hand locator (face and hand in one scene,
tracking, the disparity hint), left hands through mirroring, and confidence.

Scenes are rendered by the synthetic generator (real rasterizer, real scikit-image photos);
the network is the shipped default model run by ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import skimage.data

from stereo_hand_mesh.data.synth import (
    HAND_TO_CAMERA,
    HandScene,
    RenderedPair,
    SceneAppearance,
    SynthSettings,
    render_scene,
)
from stereo_hand_mesh.data.synth_style import SOURCE_STYLE, sample_skin_albedo
from stereo_hand_mesh.hand import template_hand
from stereo_hand_mesh.hand.poses import gesture_pose
from stereo_hand_mesh.hand.shape import sample_shape_vectors
from stereo_hand_mesh.pipeline.locator import (
    LocatorSettings,
    box_iou,
    locate_hand,
    square_box_around,
)

#: Depths of the hand and of the background plane with the face, metres.
HAND_Z_M, FACE_Z_M = 0.75, 1.5
#: Where the astronaut's head lies on the background texture: rows, columns (pixels).
FACE_ROWS, FACE_COLS = (60, 310), (110, 360)


def _face_and_hand_pair() -> RenderedPair:
    """A right hand at 0.75 m in front of a plane at 1.5 m that shows a large face (the
    astronaut's head, bigger in the image than the hand), STB's rig, source-domain light."""
    import torch

    hand = template_hand()
    settings = SynthSettings(domain="source")
    rig = settings.rig
    rng = np.random.default_rng(0)
    photo = (skimage.data.astronaut().astype(np.float32) / 255.0) ** 2.2
    texture = np.full((rig.height, rig.width + rig.width // 2, 3), 0.35, np.float32)
    (r0, r1), (c0, c1) = FACE_ROWS, FACE_COLS
    texture[r0:r1, c0:c1] = cv2.resize(photo[10:330, 100:420], (c1 - c0, r1 - r0))
    appearance = SceneAppearance(
        sample_skin_albedo(SOURCE_STYLE, rng, hand.template_vertices),
        np.array([0.0, 0.0, -1.0]),
        0.6,
        0.4,
        texture,
        FACE_Z_M,
        np.ones(3, np.float32),
    )
    u, v = 515.0, 250.0  # the hand's centre in the left image, right of the face
    centre = np.array(
        [(u - rig.cx) * HAND_Z_M / rig.fx, (v - rig.cy) * HAND_Z_M / rig.fy, HAND_Z_M]
    )
    scene = HandScene(
        gesture_pose("spread", rng, jitter=0.0),
        sample_shape_vectors(rng, 1)[0],
        HAND_TO_CAMERA.copy(),
        centre,
        appearance,
        "spread",
    )
    faces = torch.from_numpy(hand.faces.astype(np.int64))
    return render_scene(hand, settings, scene, faces, rng)


@pytest.fixture(scope="module")
def face_pair() -> RenderedPair:
    return _face_and_hand_pair()


def _truth(pair: RenderedPair, settings: LocatorSettings):
    uv = pair.annotation["vertices_uv_left"]
    disparity = float(np.median(uv[:, 0] - pair.annotation["vertices_uv_right"][:, 0]))
    return square_box_around(uv.min(0), uv.max(0), settings), disparity


def _face_box(settings: LocatorSettings):
    (r0, r1), (c0, c1) = FACE_ROWS, FACE_COLS
    return square_box_around(np.array([c0, r0]), np.array([c1, r1]), settings)


def test_the_scene_is_a_trap_for_largest_wins(face_pair: RenderedPair) -> None:
    # Precondition of the next test: the largest skin-coloured component the locator sees
    # (on its coarse grid) is the face, so a locator that took the largest would crop it.
    from stereo_hand_mesh.pipeline import locator

    settings = LocatorSettings()
    f = settings.coarse_factor
    grey = cv2.cvtColor(face_pair.left, cv2.COLOR_RGB2GRAY)
    skin, _, _ = locator._coarse_views(face_pair.left, grey, grey, f)
    largest = locator._components(skin, settings.min_area_px // f**2, 1, f)[0]
    box = square_box_around(largest.lo, largest.hi, settings)
    assert box_iou(box, _face_box(settings)) > 0.5
    assert box_iou(box, _truth(face_pair, settings)[0]) == 0.0
    # ... and skin colour is selective enough here for the component-matching regime.
    assert np.count_nonzero(skin) / skin.size < settings.stereo_min_skin_share


@pytest.mark.parametrize("skin_share", [0.25, 0.0], ids=["skin-matching", "coarse-stereo"])
def test_a_face_and_a_hand_give_the_hand(face_pair: RenderedPair, skin_share: float) -> None:
    # skin_share 0 forces the coarse disparity map, the regime of cluttered scenes.
    settings = LocatorSettings(stereo_min_skin_share=skin_share)
    truth, disparity = _truth(face_pair, settings)
    found = locate_hand(face_pair.left, face_pair.right, settings)
    assert found is not None
    assert box_iou(found.left, truth) >= 0.5, (found.left, truth)
    assert box_iou(found.left, _face_box(settings)) < 0.1
    rig = SynthSettings().rig
    face_disparity = rig.fx * rig.baseline_m / FACE_Z_M
    assert abs(found.disparity_px - disparity) < 0.1 * disparity, (found, disparity)
    assert found.disparity_px > 1.5 * face_disparity
    # The right box sits on the hand in the right image too.
    uv_r = face_pair.annotation["vertices_uv_right"]
    assert box_iou(found.right, square_box_around(uv_r.min(0), uv_r.max(0), settings)) >= 0.5


def test_tracking_starts_from_the_previous_estimate(face_pair: RenderedPair) -> None:
    settings = LocatorSettings()
    truth, disparity = _truth(face_pair, settings)
    uv = face_pair.annotation["vertices_uv_left"]
    tracked = locate_hand(face_pair.left, face_pair.right, settings, uv, disparity)
    assert tracked is not None and tracked.source == "tracking"
    assert box_iou(tracked.left, truth) > 0.95
    assert abs(tracked.disparity_px - disparity) < 0.1 * disparity
    # A hint twice the true disparity leaves nothing to match in its +-25% window: the
    # tracking match fails and the cold start finds the hand again.
    wrong = locate_hand(face_pair.left, face_pair.right, settings, uv, 2.0 * disparity)
    assert wrong is not None and wrong.source != "tracking"
    assert box_iou(wrong.left, truth) >= 0.5
    # Tracking a region where nothing is (the image's empty lower-left corner, uniform
    # grey) gives no tracking match either.
    empty = (uv - uv.min(0)) * 0.25 + np.array([10.0, 400.0])
    far = locate_hand(face_pair.left, face_pair.right, settings, empty, disparity)
    assert far is None or far.source != "tracking"


def test_locator_settings_are_checked() -> None:
    from stereo_hand_mesh.errors import ConfigError

    with pytest.raises(ConfigError, match="coarse_max_disparity_px"):
        LocatorSettings(coarse_max_disparity_px=8.0)
    # A search range below the coarse map's default is valid (the node's parameter allows
    # 8-4000 px): the coarse search is capped at it.
    assert LocatorSettings(max_disparity_px=200.0).max_disparity_px == 200.0
    with pytest.raises(ConfigError, match="near_band"):
        replace(LocatorSettings(), near_band=0.0)


# --- the whole pipeline with the shipped model -------------------------------------------


@pytest.fixture(scope="module")
def source_pair() -> RenderedPair:
    from stereo_hand_mesh.data.synth import iter_synthetic_pairs

    # The plain look: the legacy mesh-uv network was trained on hands without a forearm.
    return next(iter_synthetic_pairs(SynthSettings(domain="source", look="plain"), 1, seed=21))


@pytest.fixture(scope="module")
def backend():
    from stereo_hand_mesh.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from stereo_hand_mesh.runtime.select import default_model_files

    return OnnxRuntimeBackend(default_model_files()[1], "cpu", 1)


def _pipeline(backend, **settings):
    from stereo_hand_mesh.pipeline import MeshUVPipeline, PipelineSettings

    regressor = np.asarray(template_hand().joint_regressor)
    return MeshUVPipeline(backend, regressor, PipelineSettings(smoothing=False, **settings))


def _stb_infos():
    from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2

    return STB_BUMBLEBEE2.camera_infos()


def _mirrored_infos(left_info, right_info):
    """CameraInfo of the pair seen in a mirror: the flipped right camera becomes the left
    one (``cx -> W - 1 - cx``), the flipped left camera the right one, same baseline."""

    def flipped(info, tx):
        k, p = info.K.copy(), info.P.copy()
        k[0, 2] = info.width - 1 - k[0, 2]
        p[0, 2] = info.width - 1 - p[0, 2]
        p[0, 3] = tx
        return replace(info, K=k, P=p)

    return flipped(right_info, 0.0), flipped(left_info, float(right_info.P[0, 3]))


def _flip(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def test_left_hands_map_back_through_the_mirror(backend, source_pair: RenderedPair) -> None:
    from stereo_hand_mesh.geometry import StereoRig

    rig = StereoRig.from_camera_info(*_stb_infos())
    mirror_rig = StereoRig.from_camera_info(*_mirrored_infos(*_stb_infos()))
    direct = _pipeline(backend, min_confidence=0.0).process(
        source_pair.left, source_pair.right, rig
    )
    # The right hand seen in a mirror is a left hand: its stereo pair is the flipped views,
    # swapped, taken by the mirrored rig.
    left = _pipeline(backend, min_confidence=0.0, handedness="left").process(
        _flip(source_pair.right), _flip(source_pair.left), mirror_rig
    )
    assert direct.found and left.found
    expected = direct.vertices * np.array([-1.0, 1.0, 1.0]) + np.array([rig.baseline, 0, 0])
    diff = np.abs(left.vertices - expected)
    where = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() < 1e-6, f"max |diff| {diff.max():.3g} m at vertex, axis {where}"
    np.testing.assert_allclose(left.joints, direct.joints * [-1, 1, 1] + [rig.baseline, 0, 0],
                               atol=1e-6)  # fmt: skip
    assert left.confidence == pytest.approx(direct.confidence, abs=1e-9)
    # uv_left is in the image the caller gave: the mirrored view of the hand's right image.
    truth = source_pair.annotation["vertices_uv_right"].copy()
    truth[:, 0] = rig.left.width - 1 - truth[:, 0]
    err = np.linalg.norm(left.uv_left - truth, axis=1)
    assert np.median(err) < 10.0, f"median uv error {np.median(err):.1f} px"


@pytest.mark.parametrize("handedness", ["right", "left"])
def test_tracking_follows_the_hand_for_both_hands(
    backend, source_pair: RenderedPair, handedness: str
) -> None:
    from stereo_hand_mesh.geometry import StereoRig

    if handedness == "right":
        images = (source_pair.left, source_pair.right)
        rig = StereoRig.from_camera_info(*_stb_infos())
    else:
        images = (_flip(source_pair.right), _flip(source_pair.left))
        rig = StereoRig.from_camera_info(*_mirrored_infos(*_stb_infos()))
    pipe = _pipeline(backend, min_confidence=0.0, handedness=handedness)
    first = pipe.process(*images, rig)
    second = pipe.process(*images, rig)
    assert first.found and first.boxes.source == "skin"
    assert second.found and second.boxes.source == "tracking"
    truth = source_pair.annotation["vertices"].astype(np.float64)
    if handedness == "left":
        truth = truth * [-1, 1, 1] + [rig.baseline, 0, 0]
    errors_mm = [1e3 * np.linalg.norm(e.vertices - truth, axis=1).mean() for e in (first, second)]
    print("mean vertex error, cold start and tracked (mm):", errors_mm)
    assert errors_mm[1] < 1.5 * errors_mm[0] + 5.0, errors_mm
    untracked = _pipeline(backend, min_confidence=0.0, handedness=handedness, tracking=False)
    untracked.process(*images, rig)
    assert untracked.process(*images, rig).boxes.source == "skin"


def test_a_wrong_right_image_lowers_confidence_below_the_threshold(
    backend, source_pair: RenderedPair
) -> None:
    from stereo_hand_mesh.geometry import StereoRig

    rig = StereoRig.from_camera_info(*_stb_infos())
    pipe = _pipeline(backend)  # the default min_confidence
    threshold = pipe.settings.min_confidence
    good = pipe.process(source_pair.left, source_pair.right, rig)
    # The right image 12 rows down: the pair is no longer rectified (vertical disparity).
    shifted = np.roll(source_pair.right, 12, axis=0)
    bad = _pipeline(backend).process(source_pair.left, shifted, rig)
    assert good.found and good.confidence >= threshold, good.reason
    assert bad.confidence < good.confidence
    assert not bad.found and bad.vertices is None and bad.joints is None
    assert bad.reason == f"confidence {bad.confidence:.2f} < min_confidence {threshold:.2f}"
    assert bad.boxes is not None  # the hand was located; the mesh was refused


def test_a_collapsed_mesh_is_refused_whatever_its_confidence(
    tmp_path, source_pair: RenderedPair
) -> None:
    from model_files import collapsed_model

    from stereo_hand_mesh.geometry import StereoRig
    from stereo_hand_mesh.runtime.onnxruntime_backend import OnnxRuntimeBackend

    broken = OnnxRuntimeBackend(collapsed_model(tmp_path / "collapsed.onnx"), "cpu", 1)
    rig = StereoRig.from_camera_info(*_stb_infos())
    estimate = _pipeline(broken, min_confidence=0.0).process(
        source_pair.left, source_pair.right, rig
    )
    assert not estimate.found and estimate.vertices is None and estimate.joints is None
    assert estimate.reason.startswith("implausible mesh: bounding box 0.000 x 0.000"), estimate
    assert estimate.confidence > 0.99  # the two branches agree: confidence alone would pass
    # Without the size check (bounds that admit a point) the same mesh would be output.
    lax = _pipeline(broken, min_confidence=0.0, min_hand_extent_m=0.0, max_hand_extent_m=10.0)
    assert lax.process(source_pair.left, source_pair.right, rig).found


def test_meshes_larger_than_a_hand_are_refused(backend, source_pair: RenderedPair) -> None:
    from stereo_hand_mesh.errors import ConfigError
    from stereo_hand_mesh.geometry import StereoRig

    rig = StereoRig.from_camera_info(*_stb_infos())
    good = _pipeline(backend).process(source_pair.left, source_pair.right, rig)
    assert good.found, good.reason
    sides = np.sort(good.vertices.max(0) - good.vertices.min(0))
    tight = _pipeline(backend, max_hand_extent_m=0.9 * sides[-1])
    refused = tight.process(source_pair.left, source_pair.right, rig)
    assert not refused.found and refused.reason.startswith("implausible mesh"), refused.reason
    with pytest.raises(ConfigError, match="min_hand_extent_m < max_hand_extent_m"):
        _pipeline(backend, min_hand_extent_m=0.5, max_hand_extent_m=0.4)
