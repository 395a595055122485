"""The procedural template mesh: topology, quality, hand-likeness, preview."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from stereo_hand_mesh.hand import mesh as M  # noqa: N812
from stereo_hand_mesh.hand.joints import FINGERS, JOINT_NAMES
from stereo_hand_mesh.hand.model import template_hand
from stereo_hand_mesh.hand.template import build_template_mesh

#: Golden connectivity: changing the template's topology invalidates trained networks, so
#: it must be deliberate (bump model.TEMPLATE_NAME and this value together).
GOLDEN_NUM_VERTICES = 1130
GOLDEN_TOPOLOGY_HASH = "4bee9c8b7c5f415d"


@pytest.fixture(scope="module")
def hand():
    return template_hand()


def _tip(finger: str) -> int:
    return JOINT_NAMES.index(f"{finger}_tip")


def test_vertex_count_and_golden_topology(hand):
    assert 700 <= hand.num_vertices <= 1200
    assert hand.num_vertices == GOLDEN_NUM_VERTICES
    assert hand.num_faces == 2 * hand.num_vertices - 4
    assert hand.topology_hash == GOLDEN_TOPOLOGY_HASH
    assert hand.faces.dtype == np.int64 and hand.faces.shape == (hand.num_faces, 3)


def test_closed_manifold_genus_zero_single_component(hand):
    edges, counts = M.edge_face_counts(hand.faces)
    assert np.all(counts == 2), f"edges used by {np.unique(counts)} faces"
    # Consistent orientation: every directed edge appears exactly once.
    directed = np.stack([hand.faces, np.roll(hand.faces, -1, axis=1)], -1).reshape(-1, 2)
    assert len(np.unique(directed, axis=0)) == len(directed)
    assert M.euler_characteristic(hand.num_vertices, hand.faces) == 2
    assert len(np.unique(M.connected_components(hand.num_vertices, hand.faces))) == 1
    assert np.array_equal(hand.edges, edges)
    assert np.all(hand.edges[:, 0] < hand.edges[:, 1])
    # Every vertex is used; no face repeats a vertex.
    assert np.array_equal(np.unique(hand.faces), np.arange(hand.num_vertices))
    assert np.all(np.diff(np.sort(hand.faces, axis=1), axis=1) > 0)


def test_outward_orientation(hand):
    v, f = hand.template_vertices, hand.faces
    volume = M.signed_volume(v, f)
    assert 2.5e-4 < volume < 4.5e-4, volume  # an adult hand is about 300-400 ml
    # Normals point away from the nearest bone: compare with the direction from the
    # skeleton's closest joint (robust on fingers, where the bones are inside).
    normals = M.face_normals(v, f)
    centres = v[f].mean(axis=1)
    nearest = np.argmin(np.linalg.norm(centres[:, None] - hand.rest_joints[None], axis=2), 1)
    outward = np.sum(normals * (centres - hand.rest_joints[nearest]), axis=1) > 0
    assert outward.mean() > 0.9


def test_no_degenerate_faces_and_reasonable_triangles(hand):
    v, f = hand.template_vertices, hand.faces
    areas = M.face_areas(v, f)
    quality = M.triangle_quality(v, f)
    lengths = np.linalg.norm(v[hand.edges[:, 0]] - v[hand.edges[:, 1]], axis=1)
    assert areas.min() > 1e-7, areas.min()  # 0.1 mm^2
    assert quality.min() > 0.1, quality.min()
    assert quality.mean() > 0.8 and np.percentile(quality, 5) > 0.6
    assert 0.005 < lengths.mean() < 0.009
    assert lengths.min() > 0.0012 and lengths.max() < 0.02
    assert np.percentile(lengths, 99) / np.percentile(lengths, 1) < 4.0


def test_template_is_deterministic():
    a = build_template_mesh()
    b = build_template_mesh()
    assert np.array_equal(a.faces, b.faces)
    assert np.array_equal(a.vertices, b.vertices)


def _geodesic_from(start: int, vertices: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Dijkstra over mesh edges (naive reference)."""
    n = len(vertices)
    nbrs: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for a, b in edges:
        w = float(np.linalg.norm(vertices[a] - vertices[b]))
        nbrs[a].append((b, w))
        nbrs[b].append((a, w))
    dist = np.full(n, np.inf)
    dist[start] = 0.0
    heap = [(0.0, start)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for w_, c in nbrs[u]:
            if d + c < dist[w_]:
                dist[w_] = d + c
                heapq.heappush(heap, (d + c, w_))
    return dist


def test_looks_like_a_hand_five_fingertips(hand):
    """Geodesic extremities from the wrist are exactly the five fingertips."""
    v = hand.template_vertices
    wrist_cap = int(np.argmin(v[:, 1]))
    dist = _geodesic_from(wrist_cap, v, hand.edges)
    nbr_max = np.full(len(v), -np.inf)
    np.maximum.at(nbr_max, hand.edges[:, 0], dist[hand.edges[:, 1]])
    np.maximum.at(nbr_max, hand.edges[:, 1], dist[hand.edges[:, 0]])
    peaks = np.nonzero(dist > nbr_max)[0]
    # Keep prominent peaks: nothing within 2 cm is geodesically further from the wrist
    # (drops the saddle points of the webs between fingers, reached from both sides).
    near = np.linalg.norm(v[peaks][:, None] - v[None], axis=2) < 0.02
    peaks = peaks[[not np.any(dist[n] > dist[p]) for p, n in zip(peaks, near, strict=True)]]
    assert len(peaks) == 5, v[peaks]
    tips = hand.rest_joints[[_tip(f) for f in FINGERS]]
    gap = np.linalg.norm(v[peaks][:, None] - tips[None], axis=2)
    assert np.all(gap.min(axis=0) < 0.004), gap.min(axis=0)  # each tip has its peak
    # Tip joints lie on the surface at the end of each digit.
    for finger in FINGERS:
        d = np.linalg.norm(v - hand.rest_joints[_tip(finger)], axis=1)
        assert d.min() < 0.003, (finger, d.min())


def test_proportions_of_an_adult_hand(hand):
    v, j = hand.template_vertices, hand.rest_joints
    length = j[_tip("middle"), 1] - j[0, 1]
    assert 0.18 < length < 0.20
    assert 0.17 < v[:, 1].max() < 0.20  # wrist (origin) to the furthest point of the mesh

    def finger_length(finger: str) -> float:
        base = JOINT_NAMES.index(f"{finger}_mcp")
        return float(np.linalg.norm(j[_tip(finger)] - j[base]))

    middle = finger_length("middle")
    assert all(finger_length(f) < middle for f in ("index", "ring", "little"))
    assert 0.85 < finger_length("index") / middle < 0.97
    assert 0.90 < finger_length("ring") / middle < 1.0
    assert 0.70 < finger_length("little") / middle < 0.85
    not_thumb = hand.skin_weights[:, 1:4].sum(axis=1) < 0.5
    knuckles = v[(np.abs(v[:, 1] - 0.08) < 0.004) & not_thumb]
    assert 0.075 < np.ptp(knuckles[:, 0]) < 0.095  # palm breadth
    palm = v[np.abs(v[:, 1] - 0.05) < 0.004]
    assert 0.022 < np.ptp(palm[:, 2]) < 0.045  # palm thickness (with the thenar)
    # Finger widths: the proximal phalanx of the middle finger is ~17-21 mm wide.
    mid = 0.5 * (j[JOINT_NAMES.index("middle_mcp")] + j[JOINT_NAMES.index("middle_pip")])
    ring = v[np.abs(v[:, 1] - (mid[1] + 0.01)) < 0.003]
    ring = ring[np.abs(ring[:, 0] - mid[0]) < 0.012]
    assert 0.016 < np.ptp(ring[:, 0]) < 0.022


def test_joints_inside_the_mesh(hand):
    """Every non-tip joint is enclosed (ray-parity test against the mesh along +x)."""
    v, f = hand.template_vertices, hand.faces
    tri = v[f]
    for j, name in enumerate(JOINT_NAMES):
        if name.endswith("tip"):
            continue
        p = hand.rest_joints[j]
        # Project triangles on the yz plane; count crossings of the ray p + t*x, t > 0.
        a, b, c = tri[:, 0, 1:] - p[1:], tri[:, 1, 1:] - p[1:], tri[:, 2, 1:] - p[1:]
        d1 = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
        d2 = b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0]
        d3 = c[:, 0] * a[:, 1] - c[:, 1] * a[:, 0]
        inside = ((d1 > 0) & (d2 > 0) & (d3 > 0)) | ((d1 < 0) & (d2 < 0) & (d3 < 0))
        w = np.stack([d2, d3, d1], axis=1)[inside]
        x_hit = np.einsum("fk,fk->f", w / w.sum(axis=1, keepdims=True), tri[inside][:, :, 0])
        crossings = np.sum(x_hit > p[0])
        assert crossings % 2 == 1, name


def test_preview_png(tmp_path):
    import cv2

    from stereo_hand_mesh.hand.preview import main

    out = tmp_path / "hand.png"
    assert main([str(out), "--size", "160"]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] == 4 * 160
    assert (img < 250).mean() > 0.05  # something was drawn
