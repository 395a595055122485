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
        LocatorSettings(coarse_max_disparity_px=900.0)
    with pytest.raises(ConfigError, match="near_band"):
        replace(LocatorSettings(), near_band=0.0)
