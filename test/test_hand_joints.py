"""Joint names, parents and the maps between our order, MANO/FreiHAND and STB."""

from __future__ import annotations

import numpy as np

from stereo_hand_mesh.hand.joints import (
    FINGERS,
    JOINT_NAMES,
    JOINT_PARENTS,
    MANO16_TIPS_TO_OURS,
    MANO_TIP_VERTEX_IDS,
    NUM_JOINTS,
    OURS_TO_STB,
    STB_JOINT_NAMES,
    STB_TO_OURS,
    WRIST,
    joints_ours_from_stb,
    palm_center,
    stb_from_ours,
)

#: MANO's 16 regressed joints, then the 5 tip vertices (thumb, index, middle, ring, little).
MANO_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
    "thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip",
)  # fmt: skip
#: What each MANO name is called in our order.
MANO_TO_OUR_NAME = {
    "wrist": "wrist",
    **{f"{m}{k}": f"{o}_{p}" for m, o in (("index", "index"), ("middle", "middle"),
                                         ("ring", "ring"), ("pinky", "little"))
       for k, p in ((1, "mcp"), (2, "pip"), (3, "dip"))},
    "thumb1": "thumb_cmc", "thumb2": "thumb_mcp", "thumb3": "thumb_ip",
    **{f"{m}_tip": f"{o}_tip" for m, o in (("thumb", "thumb"), ("index", "index"),
                                          ("middle", "middle"), ("ring", "ring"),
                                          ("pinky", "little"))},
}  # fmt: skip


def _random_skeleton(rng: np.random.Generator, batch: tuple[int, ...] = ()) -> np.ndarray:
    return rng.normal(size=(*batch, NUM_JOINTS, 3))


def test_names_and_parents():
    assert len(JOINT_NAMES) == NUM_JOINTS == 21 and len(set(JOINT_NAMES)) == 21
    assert JOINT_NAMES[WRIST] == "wrist" and JOINT_PARENTS[WRIST] == -1
    assert FINGERS == ("thumb", "index", "middle", "ring", "little")
    for j, parent in enumerate(JOINT_PARENTS[1:], start=1):
        assert 0 <= parent < j
        name = JOINT_NAMES[j]
        if parent:
            assert JOINT_NAMES[parent].split("_")[0] == name.split("_")[0]  # same digit
    for f, finger in enumerate(FINGERS):
        parts = ("cmc", "mcp", "ip", "tip") if finger == "thumb" else ("mcp", "pip", "dip", "tip")
        assert JOINT_NAMES[1 + 4 * f : 5 + 4 * f] == tuple(f"{finger}_{p}" for p in parts)
        assert JOINT_PARENTS[1 + 4 * f] == WRIST


def test_mano_map_names():
    assert sorted(MANO16_TIPS_TO_OURS.tolist()) == list(range(21))  # a permutation
    for ours, mano in enumerate(MANO16_TIPS_TO_OURS):
        assert MANO_TO_OUR_NAME[MANO_NAMES[mano]] == JOINT_NAMES[ours]
    assert len(MANO_TIP_VERTEX_IDS) == 5 and all(0 <= v < 778 for v in MANO_TIP_VERTEX_IDS)


def test_mano_map_round_trip():
    rng = np.random.default_rng(0)
    mano = rng.normal(size=(4, 21, 3))
    ours = mano[..., MANO16_TIPS_TO_OURS, :]
    back = np.empty_like(ours)
    back[..., MANO16_TIPS_TO_OURS, :] = ours
    np.testing.assert_array_equal(back, mano)
    np.testing.assert_array_equal(ours[..., np.argsort(MANO16_TIPS_TO_OURS), :], mano)


def test_stb_names():
    assert len(STB_JOINT_NAMES) == 21 and STB_JOINT_NAMES[0] == "palm_center"
    assert sorted(OURS_TO_STB.tolist()) == list(range(21))
    for stb_index, ours in enumerate(OURS_TO_STB[1:], start=1):
        stb = STB_JOINT_NAMES[stb_index]
        our = JOINT_NAMES[ours]
        if stb.startswith("thumb"):
            # STB's thumb mcp, pip, dip, tip are our cmc, mcp, ip, tip.
            order = ("thumb_mcp_stb", "thumb_pip_stb", "thumb_dip_stb", "thumb_tip_stb")
            assert our == ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip")[order.index(stb)]
        else:
            assert stb == our
    # STB order: palm, then little, ring, middle, index, thumb.
    fingers = [n.split("_")[0] for n in STB_JOINT_NAMES[1::4]]
    assert fingers == ["little", "ring", "middle", "index", "thumb"]


def test_stb_inverse_permutation():
    np.testing.assert_array_equal(OURS_TO_STB[STB_TO_OURS], np.arange(21))
    np.testing.assert_array_equal(STB_TO_OURS[OURS_TO_STB], np.arange(21))


def test_palm_center_convention():
    rng = np.random.default_rng(1)
    joints = _random_skeleton(rng, (3,))
    middle_mcp = JOINT_NAMES.index("middle_mcp")
    np.testing.assert_allclose(
        palm_center(joints), 0.5 * (joints[:, WRIST] + joints[:, middle_mcp])
    )


def test_stb_round_trip():
    rng = np.random.default_rng(2)
    ours = _random_skeleton(rng, (5, 2))
    stb = stb_from_ours(ours)
    assert stb.shape == ours.shape
    np.testing.assert_allclose(stb[..., 0, :], palm_center(ours))
    np.testing.assert_array_equal(stb[..., 1:, :], ours[..., OURS_TO_STB[1:], :])
    np.testing.assert_allclose(joints_ours_from_stb(stb), ours, atol=1e-12)
    # And the other way for a skeleton given in STB order.
    again = stb_from_ours(joints_ours_from_stb(stb))
    np.testing.assert_allclose(again, stb, atol=1e-12)
    # Inputs are not modified.
    copy = stb.copy()
    joints_ours_from_stb(stb)
    np.testing.assert_array_equal(stb, copy)
