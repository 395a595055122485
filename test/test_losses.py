"""Tests of the six losses and their total (stereo_hand_mesh.losses).

References: naive loops written here (edge, Laplacian, Chamfer, normal, mask, SSIM), float64
``gradcheck``, and a textured plane seen by an STB rig (photo-consistency).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as nnf

from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry import disparity_from_depth
from stereo_hand_mesh.losses import (
    ChamferLoss,
    EdgeLengthLoss,
    LaplacianLoss,
    MaskLoss,
    NormalConsistencyLoss,
    PhotoConsistencyLoss,
    StereoCropBatch,
    StereoLossSettings,
    StereoLossTerms,
    StereoLossWeights,
    StereoSelfSupervisedLoss,
    chamfer_loss,
    edge_length_loss,
    laplacian_loss,
    mask_loss,
    mask_window,
    mesh_topology,
    nearest_neighbours,
    normal_consistency_loss,
    photo_consistency_loss,
    photometric_error,
    ssim_map,
    stereo_self_supervised_loss,
    warp_from_other_view,
)
from stereo_hand_mesh.render import RasterSettings, blob_mesh, rasterize, uv_sphere

FX, CX, CY, BASELINE = 822.79041, 318.47345, 250.31296, 0.120054


def small_meshes(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two perturbed copies of a small sphere (B, V, 3) float64 and its faces."""
    verts, faces = uv_sphere(5, 7, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    base = verts * 0.05 + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    a = base + 0.004 * torch.randn(batch, *verts.shape, generator=gen, dtype=torch.float64)
    b = base + 0.004 * torch.randn(batch, *verts.shape, generator=gen, dtype=torch.float64)
    return a, b, faces


def naive_edges(faces: torch.Tensor) -> list[tuple[int, int]]:
    edges = set()
    for f in faces.tolist():
        for i, j in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            edges.add((min(i, j), max(i, j)))
    return sorted(edges)


# ------------------------------------------------------------------------ weights


def test_weights_defaults_are_the_papers() -> None:
    w = StereoLossWeights()
    assert (w.photo, w.edge, w.laplacian, w.mask, w.chamfer, w.normal) == (
        100.0,
        1.0,
        10.0,
        0.1,
        0.001,
        0.001,
    )
    assert StereoLossSettings().alpha == 0.85
    assert StereoLossSettings().raster.cull_backfaces
    assert StereoLossWeights(photo=5.0).photo == 5.0
    with pytest.raises(
        ConfigError, match=r"StereoLossWeights\.edge expected a finite value >= 0; got -1\.0"
    ):
        StereoLossWeights(edge=-1.0)
    with pytest.raises(ConfigError, match="alpha expected a value in"):
        StereoLossSettings(alpha=1.5)
    assert StereoLossSettings().mesh_unit_m == 1.0
    with pytest.raises(ConfigError, match=r"mesh_unit_m expected a finite value > 0; got 0\.0"):
        StereoLossSettings(mesh_unit_m=0.0)


# --------------------------------------------------------------------- mesh losses


def test_edge_loss_matches_naive_loop(device: torch.device) -> None:
    a, b, faces = small_meshes()
    edges = naive_edges(faces)
    ref = 0.0
    for s in range(a.shape[0]):
        for i, j in edges:
            ref += (float((a[s, i] - a[s, j]).norm()) - float((b[s, i] - b[s, j]).norm())) ** 2
    ref /= a.shape[0] * len(edges)
    got = edge_length_loss(a.to(device), b.to(device), faces.to(device))
    assert math.isclose(float(got), ref, rel_tol=1e-10)
    assert math.isclose(
        float(EdgeLengthLoss(faces, a.shape[1]).to(device)(a.to(device), b.to(device))),
        ref,
        rel_tol=1e-10,
    )
    # Congruent meshes: zero, whatever the rigid motion between them.
    moved = a.flip(-1) + 0.3
    assert float(edge_length_loss(a, moved, faces)) < 1e-20


def test_laplacian_loss_matches_naive_loop(device: torch.device) -> None:
    a, _, faces = small_meshes()
    neighbours: dict[int, set[int]] = {}
    for i, j in naive_edges(faces):
        neighbours.setdefault(i, set()).add(j)
        neighbours.setdefault(j, set()).add(i)
    ref = 0.0
    for s in range(a.shape[0]):
        for v in range(a.shape[1]):
            mean = torch.stack([a[s, n] for n in neighbours[v]]).mean(0)
            ref += float(((a[s, v] - mean) ** 2).sum())
    ref /= a.shape[0] * a.shape[1]
    got = laplacian_loss(a.to(device), faces.to(device))
    assert math.isclose(float(got), ref, rel_tol=1e-10)
    assert math.isclose(
        float(LaplacianLoss(faces, a.shape[1]).to(device)(a.to(device))), ref, rel_tol=1e-10
    )
    assert math.isclose(
        float(laplacian_loss(a + 1.0, faces)), ref, rel_tol=1e-8
    )  # translation invariant
    # gradcheck of the sparse operator path
    assert torch.autograd.gradcheck(
        lambda x: laplacian_loss(x, faces), (a[:1].clone().requires_grad_(True),)
    )


def test_topology_is_cached_per_faces_tensor() -> None:
    _, _, faces = small_meshes()
    topo = mesh_topology(faces, 30)
    assert mesh_topology(faces, 30) is topo
    assert mesh_topology(faces.clone(), 30) is not topo
    assert topo.edges.shape == (len(naive_edges(faces)), 2)
    assert not topo.laplacian.requires_grad
    faces2 = faces.clone()
    before = mesh_topology(faces2, 30)
    faces2[0] = faces2[0].flip(0)  # in-place change: rebuilt
    assert mesh_topology(faces2, 30) is not before


def test_chamfer_matches_naive_loop(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(2, 40, 3, generator=gen, dtype=torch.float64)
    b = torch.rand(2, 40, 3, generator=gen, dtype=torch.float64)
    ref = 0.0
    for s in range(2):
        d = ((a[s, :, None] - b[s, None]) ** 2).sum(-1)
        ref += float(d.min(1).values.sum() + d.min(0).values.sum()) / 40
    ref /= 2
    got = chamfer_loss(a.to(device), b.to(device))
    assert math.isclose(float(got), ref, rel_tol=1e-10)
    assert math.isclose(float(ChamferLoss()(a, b)), ref, rel_tol=1e-10)
    # Different sizes, and the nearest-neighbour search against brute force.
    c = b[:, :25]
    idx = nearest_neighbours(a.to(device), c.to(device)).cpu()
    brute = ((a[:, :, None] - c[:, None]) ** 2).sum(-1).argmin(-1)
    assert torch.equal(idx, brute)
    # Equal sets: zero, with a finite (zero) gradient.
    x = a.clone().to(device).requires_grad_(True)
    loss = chamfer_loss(x, a.to(device))
    loss.backward()
    assert float(loss.detach()) == 0.0 and bool(torch.isfinite(x.grad).all())
    assert torch.autograd.gradcheck(
        lambda p: chamfer_loss(p, b.to(device)), (a.to(device).requires_grad_(True),)
    )


def test_nearest_neighbours_matches_kdtree_on_hand_sized_sets(device: torch.device) -> None:
    from scipy.spatial import cKDTree

    gen = torch.Generator().manual_seed(4)
    a = 0.5 + 0.05 * torch.randn(3, 1130, 3, generator=gen)
    b = a[:, :1000] + 0.003 * torch.randn(3, 1000, 3, generator=gen)
    got = nearest_neighbours(a.to(device), b.to(device)).cpu()
    ref = [cKDTree(b[s].double().numpy()).query(a[s].double().numpy())[1] for s in range(3)]
    agree = (got == torch.as_tensor(np.stack(ref))).float().mean()
    # float32 scores: rare near-ties may pick another point at the same distance (1e-7 m^2).
    near = ((a - torch.gather(b, 1, got[..., None].expand(-1, -1, 3))) ** 2).sum(-1)
    best = ((a[:, :, None] - b[:, None]) ** 2).sum(-1).amin(-1)
    assert float(agree) > 0.999 and float((near - best).max()) < 1e-9


def test_normal_consistency_matches_naive_loop(device: torch.device) -> None:
    a, b, faces = small_meshes()
    ref, count = 0.0, 0
    for s in range(a.shape[0]):
        for f in faces.tolist():
            n = torch.linalg.cross(b[s, f[1]] - b[s, f[0]], b[s, f[2]] - b[s, f[0]])
            n = n / n.norm()
            for i, j in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
                e = a[s, j] - a[s, i]
                ref += abs(float(e @ n) / float(e.norm()))
                count += 1
    ref /= count
    got = normal_consistency_loss(a.to(device), b.to(device), faces.to(device))
    assert math.isclose(float(got), ref, rel_tol=1e-9)
    assert math.isclose(
        float(NormalConsistencyLoss(faces).to(device)(a.to(device), b.to(device))),
        ref,
        rel_tol=1e-9,
    )
    # The same mesh (up to translation and scale) is perfectly consistent.
    assert float(normal_consistency_loss(a, a * 1.5 + 0.2, faces)) < 1e-12
    assert torch.autograd.gradcheck(
        lambda p: normal_consistency_loss(p, b, faces), (a.clone().requires_grad_(True),)
    )


def test_mask_loss(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(5)
    sil = torch.rand(2, 8, 9, generator=gen).to(device)
    target = (torch.rand(2, 8, 9, generator=gen) > 0.5).float().to(device)
    ref = (
        sum(
            float((sil[b, i, j] - target[b, i, j]) ** 2)
            for b in range(2)
            for i in range(8)
            for j in range(9)
        )
        / 144
    )
    assert math.isclose(float(mask_loss(sil, target)), ref, rel_tol=1e-6)
    assert math.isclose(float(MaskLoss()(sil, target)), ref, rel_tol=1e-6)
    assert float(mask_loss(target, target)) == 0.0


# ----------------------------------------------------------------- photometric


def test_ssim_matches_naive_reference_and_gradcheck() -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 9, 11, generator=gen, dtype=torch.float64)
    y = torch.rand(2, 3, 9, 11, generator=gen, dtype=torch.float64)

    def pool(t: torch.Tensor) -> torch.Tensor:
        return nnf.avg_pool2d(t, 3, 1, 1, count_include_pad=False)

    mx, my = pool(x), pool(y)
    sxx, syy, sxy = pool(x * x) - mx**2, pool(y * y) - my**2, pool(x * y) - mx * my
    ref = (2 * mx * my + 1e-4) * (2 * sxy + 9e-4) / ((mx**2 + my**2 + 1e-4) * (sxx + syy + 9e-4))
    got = ssim_map(x, y)
    assert float((got - ref).abs().max()) < 1e-12
    assert torch.allclose(ssim_map(x, x), torch.ones_like(x))
    assert torch.autograd.gradcheck(ssim_map, (x.requires_grad_(True), y.requires_grad_(True)))


def test_warp_with_constant_disparity_shifts_the_image(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(7)
    source = torch.rand(1, 3, 16, 20, generator=gen).to(device)
    box_t = torch.tensor([[100.0, 50.0, 20.0]], device=device)  # scale 1 (crop 20 wide? no: 16x16)
    box_t = torch.tensor([[100.0, 50.0, 16.0]], device=device)
    box_s = torch.tensor([[97.0, 50.0, 20.0]], device=device)  # source crop: 20 px for 20 columns
    disparity = torch.full((1, 16, 16), 4.0, device=device)
    valid = torch.ones(1, 16, 16, dtype=torch.bool, device=device)
    # target right: source x = x_t + d -> source crop col = (100 + j + 4) - 97 = j + 7
    out = warp_from_other_view(source, disparity, valid, box_t, box_s, True)
    assert torch.allclose(out[..., :13], source[..., :16, 7:20], atol=1e-6)
    assert float(out[..., 13:].abs().max()) == 0.0  # outside the source crop
    # target left: source x = x_t - d -> col = j + 3 - 4 = j - 1; only the hand region warps
    valid[0, :, :8] = False
    out = warp_from_other_view(source, disparity, valid, box_t, box_s, False)
    assert torch.allclose(out[..., 8:], source[..., :16, 7:15], atol=1e-6)
    assert float(out[..., :8].abs().max()) == 0.0


def plane_views(z: float, size: int = 96, side: float = 160.0) -> tuple[torch.Tensor, ...]:
    """Crops of a fronto-parallel textured plane at depth z seen by the STB rig."""
    rng = np.random.default_rng(8)
    waves = [
        (rng.uniform(-1, 1, 2), rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.03, 0.06))
        for _ in range(5)
    ]

    def texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.zeros((3, *x.shape))
        for direction, phase, wavelength in waves:
            d = direction / np.linalg.norm(direction)
            arg = 2 * np.pi * (d[0] * x + d[1] * y) / wavelength
            out += np.sin(arg[None] + phase[:, None, None])
        return 0.5 + 0.1 * out

    s = size / side
    d_true = FX * BASELINE / z
    x0_l, y0 = CX - side / 2, CY - side / 2
    x0_r = x0_l - d_true
    j = np.arange(size)
    u_l, v = np.meshgrid(x0_l + j / s, y0 + j / s)
    u_r = x0_r + j[None, :] / s + 0 * v
    left = texture((u_l - CX) * z / FX, (v - CY) * z / FX)
    right = texture((u_r - CX) * z / FX + BASELINE, (v - CY) * z / FX)
    images = [torch.as_tensor(im, dtype=torch.float32)[None] for im in (left, right)]
    boxes = [torch.tensor([[x0, y0, side]]) for x0 in (x0_l, x0_r)]
    return images[0], images[1], boxes[0], boxes[1]


def plane_mesh(z: float, half: float = 0.09, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.linspace(-half, half, n + 1)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    verts = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.full(((n + 1) ** 2,), z)], 1)
    faces = []
    for r in range(n):
        for c in range(n):
            a = r * (n + 1) + c
            faces += [[a, a + 1, a + n + 2], [a, a + n + 2, a + n + 1]]
    return verts, torch.tensor(faces)


def test_photo_consistency_is_minimal_at_the_true_depth(device: torch.device) -> None:
    z_true, size = 0.5, 96
    img_l, img_r, box_l, box_r = plane_views(z_true, size)
    mask = torch.zeros(1, size, size)
    mask[:, 12:-12, 12:-12] = 1.0  # keep away from the crops' borders
    k = torch.tensor([[FX, FX, CX, CY]])
    crops = StereoCropBatch(
        img_l, img_r, mask, mask.clone(), box_l, box_r, k, k.clone(), torch.tensor([BASELINE])
    )
    crops = StereoCropBatch(**{name: t.to(device) for name, t in crops.__dict__.items()})
    only_photo = StereoLossWeights(
        photo=1.0, edge=0.0, laplacian=0.0, mask=0.0, chamfer=0.0, normal=0.0
    )
    settings = StereoLossSettings(
        weights=only_photo, raster=RasterSettings()
    )  # an open plane: no culling
    verts, faces = plane_mesh(0.0)
    verts, faces = verts.to(device), faces.to(device)

    def loss_and_grad(delta_mm: float) -> tuple[float, float]:
        offset = torch.tensor(z_true + delta_mm / 1000.0, device=device, requires_grad=True)
        v = (verts + torch.stack([torch.zeros_like(offset), torch.zeros_like(offset), offset]))[
            None
        ]
        terms = stereo_self_supervised_loss(v, v, v.detach(), v.detach(), faces, crops, settings)
        terms.total.backward()
        return float(terms.total.detach()), float(offset.grad)

    deltas = list(range(-20, 21, 2))
    values = [loss_and_grad(d)[0] for d in deltas]
    best = deltas[int(np.argmin(values))]
    assert best == 0, (
        f"loss minimal at {best} mm: {dict(zip(deltas, np.round(values, 4), strict=True))}"
    )
    for delta in (-12, -6, -2, 2, 6, 12):
        _, grad = loss_and_grad(float(delta))
        assert grad * delta > 0, f"gradient {grad:.3g} at {delta} mm does not point to the truth"


def test_photo_consistency_loss_function_and_module(device: torch.device) -> None:
    z_true, size = 0.5, 64
    img_l, img_r, box_l, box_r = plane_views(z_true, size, side=110.0)
    verts, faces = plane_mesh(z_true)
    k = torch.tensor([[FX, FX, CX, CY]])
    from stereo_hand_mesh.geometry import crop_intrinsics

    depth = rasterize(verts[None], faces, crop_intrinsics(k, box_l, size), (size, size)).depth
    mask = torch.ones(1, size, size)
    args = (img_l, img_r, depth, mask, box_l, box_r, torch.tensor([FX * BASELINE]), False)
    args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
    good = photo_consistency_loss(*args)
    assert math.isclose(float(PhotoConsistencyLoss()(*args)), float(good), rel_tol=1e-6)
    wrong = photo_consistency_loss(*args[:7], True)  # warping the wrong way
    assert float(good) < 0.5 * float(wrong)
    # Empty masks give zero, not NaN.
    empty = photometric_error(
        img_l.to(device), img_l.to(device), torch.zeros(1, size, size, device=device)
    )
    assert float(empty) == 0.0


def test_mask_window_gives_the_full_crop_result(device: torch.device) -> None:
    size = 64
    img_l, img_r, box_l, box_r = plane_views(0.5, size, side=110.0)
    verts, faces = plane_mesh(0.503)
    k = torch.tensor([[FX, FX, CX, CY]])
    from stereo_hand_mesh.geometry import crop_intrinsics

    depth = rasterize(verts[None], faces, crop_intrinsics(k, box_l, size), (size, size)).depth
    mask = torch.zeros(1, size, size)
    mask[:, 20:41, 9:30] = 1.0
    assert mask_window(mask) == (19, 42, 8, 31)
    fb = torch.tensor([FX * BASELINE])
    args = [t.to(device) for t in (img_l, img_r, depth, mask, box_l, box_r, fb)]
    windowed = photo_consistency_loss(*args, False)
    disparity = disparity_from_depth(args[2], args[6])
    warped = warp_from_other_view(args[1], disparity, args[2] > 0, args[4], args[5], False)
    full = photometric_error(args[0], warped, args[3]).mean()
    assert math.isclose(float(windowed), float(full), rel_tol=1e-5)
    assert mask_window(torch.zeros(2, 5, 5)) == (0, 1, 0, 1)


# ------------------------------------------------------------------------- total


def make_crops(batch: int, size: int, device: torch.device) -> StereoCropBatch:
    gen = torch.Generator().manual_seed(9)
    k = torch.tensor([[FX, FX, CX, CY]]).repeat(batch, 1)
    box_l = torch.tensor([[CX - 100.0, CY - 100.0, 200.0]]).repeat(batch, 1)
    box_r = box_l - torch.tensor([[FX * BASELINE / 0.5, 0.0, 0.0]])
    mask = torch.zeros(batch, size, size)
    mask[:, size // 4 : -size // 4, size // 3 : -size // 3] = 1.0
    crops = StereoCropBatch(
        torch.rand(batch, 3, size, size, generator=gen),
        torch.rand(batch, 3, size, size, generator=gen),
        mask,
        mask.clone(),
        box_l,
        box_r,
        k,
        k.clone(),
        torch.full((batch,), BASELINE),
    )
    return StereoCropBatch(**{name: t.to(device) for name, t in crops.__dict__.items()})


def test_crop_batch_takes_rows_as_float_loss_input(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(11)
    n, size = 5, 8
    cut = StereoCropBatch(
        torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8),
        torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8),
        torch.randint(0, 2, (n, size, size), generator=gen, dtype=torch.uint8),
        torch.randint(0, 2, (n, size, size), generator=gen, dtype=torch.uint8),
        torch.rand(n, 3, generator=gen, dtype=torch.float64) * 100,
        torch.rand(n, 3, generator=gen, dtype=torch.float64) * 100,
        torch.rand(n, 4, generator=gen, dtype=torch.float64) * 100,
        torch.rand(n, 4, generator=gen, dtype=torch.float64) * 100,
        torch.rand(n, generator=gen, dtype=torch.float64),
    )
    rows = torch.tensor([3, 0, 3])
    step = cut.batch(rows, device)
    assert type(step) is StereoCropBatch and step.batch_size == 3 and step.size == size
    for name, value in step.__dict__.items():
        assert value.dtype == torch.float32 and value.device.type == device.type, name
        source = getattr(cut, name)
        scale = 255.0 if name.startswith("image") else 1.0
        for i, row in enumerate(rows.tolist()):  # naive reference, one pair at a time
            want = source[row].to(torch.float32) / scale
            got = value[i].cpu()
            assert torch.equal(got, want), f"{name}[{i}]: max diff {(got - want).abs().max()}"
    # Float images are taken as they are (already in [0, 1]).
    again = step.batch(torch.tensor([0]), device)
    assert torch.equal(again.image_left, step.image_left[:1])


def test_total_loss_terms_and_gradients(device: torch.device) -> None:
    verts, faces = blob_mesh(center=(0.0, 0.0, 0.5), n_rings=12, n_segments=14)
    batch, size = 2, 64
    crops = make_crops(batch, size, device)
    gen = torch.Generator().manual_seed(10)
    left = (
        (verts[None] + 0.002 * torch.randn(batch, *verts.shape, generator=gen))
        .to(device)
        .requires_grad_(True)
    )
    right = (
        (verts[None] + 0.002 * torch.randn(batch, *verts.shape, generator=gen))
        .to(device)
        .requires_grad_(True)
    )
    pseudo = verts[None].repeat(batch, 1, 1).to(device)
    terms = stereo_self_supervised_loss(left, right, pseudo, pseudo, faces.to(device), crops)
    assert isinstance(terms, StereoLossTerms)
    values = terms.as_dict()
    assert list(values) == [
        "photo_left", "photo_right", "edge_left", "edge_right",
        "laplacian_left", "laplacian_right", "mask_left", "mask_right",
        "chamfer", "normal", "total",
    ]  # fmt: skip
    assert all(v.ndim == 0 and bool(torch.isfinite(v)) for v in values.values())
    w = StereoLossWeights()
    expected = (
        w.photo * (values["photo_left"] + values["photo_right"])
        + w.edge * (values["edge_left"] + values["edge_right"])
        + w.laplacian * (values["laplacian_left"] + values["laplacian_right"])
        + w.mask * (values["mask_left"] + values["mask_right"])
        + w.chamfer * values["chamfer"]
        + w.normal * values["normal"]
    )
    assert torch.allclose(terms.total, expected)
    terms.total.backward()
    assert bool(torch.isfinite(left.grad).all()) and float(left.grad.abs().sum()) > 0
    assert bool(torch.isfinite(right.grad).all()) and float(right.grad.abs().sum()) > 0
    module = StereoSelfSupervisedLoss(faces).to(device)
    again = module(left.detach(), right.detach(), pseudo, pseudo, crops)
    assert torch.allclose(again.total, terms.total.detach(), rtol=1e-5)


def test_mesh_terms_are_in_the_chosen_length_unit(device: torch.device) -> None:
    """Edge, Laplacian and Chamfer scale with the unit squared; photo, mask, normal do not."""
    verts, faces = blob_mesh(center=(0.0, 0.0, 0.5), n_rings=10, n_segments=12)
    crops = make_crops(1, 48, device)
    gen = torch.Generator().manual_seed(3)
    v = verts[None].to(device)
    other = v + 0.003 * torch.randn(v.shape, generator=gen).to(device)
    mm = StereoLossSettings(mesh_unit_m=0.001)
    in_m = stereo_self_supervised_loss(other, v, v, v, faces.to(device), crops).as_dict()
    in_mm = stereo_self_supervised_loss(other, v, v, v, faces.to(device), crops, mm).as_dict()
    for name in ("edge_left", "laplacian_left", "laplacian_right", "chamfer"):
        assert float(in_m[name]) > 0
        assert float(in_mm[name]) == pytest.approx(1e6 * float(in_m[name]), rel=1e-4), name
    for name in ("photo_left", "photo_right", "mask_left", "mask_right", "normal"):
        assert float(in_mm[name]) == pytest.approx(float(in_m[name]), rel=1e-5, abs=1e-9), name


def test_total_loss_consistency_terms_vanish_for_equal_meshes(device: torch.device) -> None:
    verts, faces = blob_mesh(center=(0.0, 0.0, 0.5), n_rings=10, n_segments=12)
    crops = make_crops(1, 48, device)
    v = verts[None].to(device)
    terms = stereo_self_supervised_loss(v, v, v, v, faces.to(device), crops)
    assert float(terms.chamfer) == 0.0
    assert float(terms.normal) < 1e-6
    assert float(terms.edge_left) == 0.0 and float(terms.edge_right) == 0.0


def test_loss_shape_errors() -> None:
    a, b, faces = small_meshes()
    with pytest.raises(ShapeError, match=r"verts expected shape \(B, V, 3\); got \(30, 3\)"):
        edge_length_loss(a[0], b[0], faces)
    with pytest.raises(ShapeError, match=r"pseudo_verts expected shape \(2, 30, 3\)"):
        edge_length_loss(a, b[:1], faces)
    with pytest.raises(ShapeError, match=r"faces expected shape \(F, 3\)"):
        laplacian_loss(a, faces[:, :2])
    with pytest.raises(ShapeError, match=r"faces expected vertex indices in \[0, 30\)"):
        laplacian_loss(a, faces + 100)
    with pytest.raises(ShapeError, match=r"verts_b expected shape \(2, \*, 3\)"):
        chamfer_loss(a, b[:1])
    with pytest.raises(ShapeError, match=r"verts_right expected shape \(2, 30, 3\)"):
        normal_consistency_loss(a, b[:, :5], faces)
    with pytest.raises(ShapeError, match=r"target_mask expected shape \(2, 4, 4\)"):
        mask_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))
    with pytest.raises(ShapeError, match=r"y expected shape \(1, 3, 5, 5\)"):
        ssim_map(torch.zeros(1, 3, 5, 5), torch.zeros(1, 1, 5, 5))
    with pytest.raises(ShapeError, match=r"disparity expected shape \(1, H, W\)"):
        warp_from_other_view(
            torch.zeros(1, 3, 5, 5),
            torch.zeros(2, 5, 5),
            torch.zeros(2, 5, 5),
            torch.zeros(1, 3),
            torch.zeros(1, 3),
            True,
        )
    with pytest.raises(ShapeError, match=r"mask expected shape \(1, 5, 5\)"):
        photometric_error(torch.zeros(1, 3, 5, 5), torch.zeros(1, 3, 5, 5), torch.zeros(5, 5))
    with pytest.raises(ShapeError, match=r"target_depth expected shape \(B, H, W\)"):
        photo_consistency_loss(
            *(torch.zeros(1, 3, 5, 5),) * 3,
            torch.zeros(1, 5, 5),
            torch.zeros(1, 3),
            torch.zeros(1, 3),
            torch.ones(1),
            True,
        )
    crops = make_crops(2, 16, torch.device("cpu"))
    with pytest.raises(ShapeError, match=r"mask_right expected shape \(2, 16, 16\)"):
        StereoCropBatch(**{**crops.__dict__, "mask_right": torch.zeros(2, 16)})
    with pytest.raises(ShapeError, match=r"verts_left expected shape \(2, V, 3\)"):
        stereo_self_supervised_loss(a[0], b[0], a[0], b[0], faces, crops)
    with pytest.raises(
        ShapeError, match=r"pseudo_right expected shape \(2, 30, 3\); got \(2, 29, 3\)"
    ):
        stereo_self_supervised_loss(a, b, a, b[:, :29], faces, crops)
