"""The pair selector of the adaptation node (ros/pair_selector.py), on rendered hand pairs."""

from __future__ import annotations

import numpy as np
import pytest

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.ros.pair_selector import PairSelector, SelectorSettings

START = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def hand_pairs() -> list:
    """Four rendered stereo pairs of the hand (source domain, 320x240)."""
    from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
    from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs

    rig = rig_for_size(320, 240, None)
    return list(iter_synthetic_pairs(SynthSettings(domain="source", rig=rig), 4, seed=2))


def test_selector_keeps_hands_and_drops_empty_and_duplicate_pairs(hand_pairs: list) -> None:
    selector = PairSelector(SelectorSettings(min_interval_s=0.2))
    a, b = hand_pairs[0], hand_pairs[1]
    keep, reason = selector.consider(a.left, a.right, START)
    assert keep and reason.startswith("kept: first pair, hand at disparity"), reason
    keep, reason = selector.consider(b.left, b.right, START + 10**8)
    assert not keep and reason.startswith("too soon: 0.100 s"), reason
    keep, reason = selector.consider(a.left, a.right, START + 10**9)
    assert not keep and reason.startswith("near-duplicate: change 0.00"), reason
    uniform = np.full_like(a.left, 90)
    keep, reason = selector.consider(uniform, uniform, START + 2 * 10**9)
    assert not keep and reason.startswith("no hand"), reason
    keep, reason = selector.consider(b.left, b.right, START + 3 * 10**9)
    assert keep and "change" in reason, reason
    # An earlier stamp (a replayed bag) is not "too soon".
    keep, reason = selector.consider(a.left, a.right, START)
    assert keep, reason
    with pytest.raises(ConfigError, match="min_change expected a finite number >= 0"):
        SelectorSettings(min_change=-1.0)


def test_selector_duplicate_threshold_is_in_grey_levels(hand_pairs: list) -> None:
    selector = PairSelector(SelectorSettings(min_interval_s=0.0, min_change=5.0))
    a = hand_pairs[2]
    assert selector.consider(a.left, a.right, START)[0]
    brighter = np.clip(a.left.astype(np.int16) + 4, 0, 255).astype(np.uint8)
    keep, reason = selector.consider(brighter, a.right, START + 1)
    assert not keep and "change 4.0" in reason, reason  # +4 grey levels everywhere
    brighter = np.clip(a.left.astype(np.int16) + 8, 0, 255).astype(np.uint8)
    assert selector.consider(brighter, a.right, START + 2)[0]
    thumb = selector.thumbnail(a.left)
    assert thumb.shape == (24, 32) and thumb.dtype == np.float32
