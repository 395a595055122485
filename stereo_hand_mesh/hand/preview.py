"""PNG previews of hand meshes for human inspection (flat-shaded orthographic, OpenCV).

Run ``python -m stereo_hand_mesh.hand.preview OUT.png`` to render the rest template from the
palm, back and side, and a row of gestures, into one image.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from stereo_hand_mesh._check import check_shape

__all__ = ["VIEWS", "look_rotation", "main", "render_mesh", "render_views"]


def look_rotation(direction: Sequence[float], down: Sequence[float]) -> np.ndarray:
    """(3, 3) view rotation: rows are image right, image down and the viewing direction.

    Args:
        direction: viewing direction (from the eye into the scene), hand frame.
        down: a direction that should point down in the image (orthogonalized).
    """
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    dn = np.asarray(down, dtype=np.float64)
    dn = dn - d * (dn @ d)
    dn = dn / np.linalg.norm(dn)
    return np.stack([np.cross(dn, d), dn, d])


#: Named views of the hand frame: palm towards the viewer, back towards the viewer, radial
#: (thumb) side, and an oblique view of the palm.
VIEWS: dict[str, np.ndarray] = {
    "palm": look_rotation((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),
    "back": look_rotation((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "side": look_rotation((-1.0, 0.0, 0.1), (0.0, -1.0, 0.0)),
    "oblique": look_rotation((-0.4, 0.2, -1.0), (0.0, -1.0, 0.0)),
}


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    view: np.ndarray,
    size: int = 400,
    extent: float | None = None,
    center: np.ndarray | None = None,
    color: tuple[int, int, int] = (140, 170, 225),
    edges: bool = True,
    face_colors: np.ndarray | None = None,
) -> np.ndarray:
    """Flat-shaded orthographic render with the painter's algorithm.

    Args:
        vertices: (V, 3) vertices, metres.
        faces: (F, 3) outward-oriented triangles (vertex indices).
        view: (3, 3) rotation; rows are image right, image down and the viewing direction.
        size: image width and height in pixels.
        extent: metres shown across the image; None fits the mesh.
        center: (3,) point at the image centre; None uses the bounding-box centre.
        color: BGR base colour.
        edges: draw triangle edges.
        face_colors: (F, 3) BGR colours overriding ``color`` per face, or None.

    Returns:
        (size, size, 3) uint8 BGR image.
    """
    import cv2

    check_shape(vertices, ("V", 3), "vertices")
    check_shape(faces, ("F", 3), "faces")
    cam = vertices @ view.T
    if center is None:
        c = 0.5 * (cam.min(axis=0) + cam.max(axis=0))
    else:
        c = view @ np.asarray(center)
    if extent is None:
        extent = 1.1 * float(np.max(cam.max(axis=0)[:2] - cam.min(axis=0)[:2]))
    scale = size / extent
    px = (cam[:, :2] - c[:2]) * scale + size / 2.0
    tri = cam[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-20)
    light = np.array([0.3, -0.4, -1.0])
    light /= np.linalg.norm(light)
    shade = np.clip(normal @ light, 0.0, 1.0)
    facing = normal[:, 2] < 0.0  # towards the viewer (viewing direction is +z)
    order = np.argsort(-tri[:, :, 2].mean(axis=1))  # far to near
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    shift = 4
    pts_all = np.round(px[faces] * (1 << shift)).astype(np.int32)
    base = np.broadcast_to(
        np.asarray(color if face_colors is None else face_colors, dtype=np.float64),
        (len(faces), 3),
    )
    for f in order:
        if not facing[f]:
            continue
        col = tuple(int(v) for v in base[f] * (0.25 + 0.75 * shade[f]))
        cv2.fillConvexPoly(img, pts_all[f], col, lineType=cv2.LINE_AA, shift=shift)
        if edges:
            cv2.polylines(img, [pts_all[f]], True, (60, 60, 60), 1, cv2.LINE_AA, shift)
    return img


def render_views(
    vertices: np.ndarray,
    faces: np.ndarray,
    views: Sequence[str] = ("palm", "back", "side", "oblique"),
    size: int = 400,
    extent: float = 0.24,
) -> np.ndarray:
    """Render the named :data:`VIEWS` side by side; returns (size, size * n, 3) uint8 BGR."""
    center = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    return np.concatenate(
        [render_mesh(vertices, faces, VIEWS[v], size, extent, center) for v in views], axis=1
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Write a PNG with the rest template (4 views) and the gestures (palm view)."""
    import cv2

    from stereo_hand_mesh.hand.model import template_hand
    from stereo_hand_mesh.hand.poses import GESTURES, gesture_pose

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", help="output PNG path")
    parser.add_argument("--size", type=int, default=400, help="pixels per view")
    args = parser.parse_args(argv)
    hand = template_hand()
    rows = [render_views(hand.template_vertices, hand.faces, size=args.size)]
    names = sorted(GESTURES)
    poses = np.stack([gesture_pose(n) for n in names])
    out = hand.forward(poses)
    tiles = []
    for i, name in enumerate(names):
        tile = render_mesh(
            out.vertices[i], hand.faces, VIEWS["oblique"], args.size // 2, 0.24, edges=False
        )
        cv2.putText(tile, name, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        tiles.append(tile)
    per_row = 2 * 4
    while len(tiles) % per_row:
        tiles.append(np.full_like(tiles[0], 255))
    for r in range(0, len(tiles), per_row):
        rows.append(np.concatenate(tiles[r : r + per_row], axis=1))
    cv2.imwrite(args.out, np.concatenate(rows, axis=0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
