"""Photo-consistency between the two views of a stereo pair (eqs. 2-4 of the seed paper).

Crop geometry. Each view's image is a square crop (see
:class:`~stereo_hand_mesh.geometry.CropBox`) given as a ``(B, 3)`` row ``[x0, y0, side]`` in
pixels of the full rectified image, resized to ``S x S``: crop pixel ``(i, j)`` shows the
image point ``(x0 + j / s, y0 + i / s)`` with ``s = S / side``. For a target pixel with
disparity ``d = u_l - u_r`` (image pixels, ``d = fx * B / z + (cx_l - cx_r)``):

* target = right view: its left match is at image ``x_l = x_r + d``, so the left crop is
  sampled at ``((x0_r + j / s_r + d) - x0_l) * s_l``;
* target = left view: its right match is at ``x_r = x_l - d``.

Rows map through ``y0`` and the scales the same way (equal for crops of a rectified pair that
share ``y0`` and ``side``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as nnf

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry.batched import disparity_from_depth

__all__ = [
    "PhotoConsistencyLoss",
    "mask_window",
    "photo_consistency_loss",
    "photometric_error",
    "ssim_map",
    "warp_from_other_view",
]

#: SSIM stabilizers for images in [0, 1] (Wang et al. 2004: (0.01 L)^2, (0.03 L)^2).
_C1 = 0.01**2
_C2 = 0.03**2


def _box_sum3(t: Tensor) -> Tensor:
    """3 x 3 box sum over the last two dims with zero padding (separable, in place).

    Shifted in-place sums of contiguous views: ``avg_pool2d`` is ~20x slower on CPU.
    """
    h = t.clone()
    h[..., 1:] += t[..., :-1]
    h[..., :-1] += t[..., 1:]
    v = h.clone()
    v[..., 1:, :] += h[..., :-1, :]
    v[..., :-1, :] += h[..., 1:, :]
    return v


def _inv_window_count(height: int, width: int, like: Tensor) -> Tensor:
    """(H, W) 1 / number of in-image pixels of each 3 x 3 window."""
    rows = torch.full((height,), 3.0, dtype=like.dtype, device=like.device)
    cols = torch.full((width,), 3.0, dtype=like.dtype, device=like.device)
    rows[0] -= 1.0
    rows[-1] -= 1.0
    cols[0] -= 1.0
    cols[-1] -= 1.0
    return 1.0 / (rows.clamp_min(1.0)[:, None] * cols.clamp_min(1.0)[None, :])


class _SSIM(torch.autograd.Function):
    """SSIM map with an analytic backward (about half the memory passes of autograd).

    With ``A1 = 2 mu_x mu_y + C1``, ``A2 = 2 sigma_xy + C2``, ``B1 = mu_x^2 + mu_y^2 + C1``,
    ``B2 = sigma_x^2 + sigma_y^2 + C2`` and ``S = A1 A2 / (B1 B2)``:
    ``dS/dmu_x = 2 (mu_y (A2 - A1) / (B1 B2) - mu_x S (1/B1 - 1/B2))``,
    ``dS/dE[xy] = 2 A1 / (B1 B2)``, ``dS/dE[x^2 + y^2] = -S / B2``; the local means are
    box filters, whose adjoint is the same box.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        # The arithmetic is memory-bound on CPU: fused, in-place steps keep the passes few.
        channels = x.shape[1]
        inv = _inv_window_count(x.shape[-2], x.shape[-1], x)
        # Four local means suffice: sigma_x^2 + sigma_y^2 needs only E[x^2 + y^2].
        raw = x.new_empty(x.shape[0], 4 * channels, *x.shape[2:])
        raw_x, raw_y, raw_sq, raw_xy = raw.split(channels, dim=1)
        raw_x.copy_(x)
        raw_y.copy_(y)
        torch.mul(x, x, out=raw_sq).addcmul_(y, y)
        torch.mul(x, y, out=raw_xy)
        mu_x, mu_y, e_sq, e_xy = _box_sum3(raw).mul_(inv).split(channels, dim=1)
        a1 = torch.mul(mu_x, mu_y).mul_(2.0).add_(_C1)
        a2 = torch.mul(e_xy, 2.0).add_(_C2 + _C1).sub_(a1)  # 2 (E[xy] - mu_x mu_y) + C2
        b1 = torch.mul(mu_x, mu_x).addcmul_(mu_y, mu_y).add_(_C1)
        b2 = torch.sub(e_sq, b1).add_(_C1 + _C2)
        ctx.save_for_backward(x, y, mu_x, mu_y, a1, a2, b1, b2, inv)
        return torch.mul(a1, a2).div_(torch.mul(b1, b2))

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        x, y, mu_x, mu_y, a1, a2, b1, b2, inv = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[:2]
        channels = x.shape[1]
        n_maps = 2 + int(need_x) + int(need_y)
        maps = grad.new_empty(grad.shape[0], n_maps * channels, *grad.shape[2:])
        m = list(maps.split(channels, dim=1))
        gr = torch.mul(b1, b2).reciprocal_().mul_(grad)  # g / (B1 B2)
        gs = torch.mul(a1, a2).mul_(gr)  # g S
        # d/dE[x^2 + y^2] = -g S / B2 ; d/dE[xy] = 2 g A1 / (B1 B2)
        torch.div(gs, b2, out=m[0]).neg_()
        torch.mul(a1, gr, out=m[1]).mul_(2.0)
        # d/dmu_x = 2 (mu_y (A2 - A1) g / (B1 B2) - mu_x g S (1/B1 - 1/B2))
        diff = torch.sub(a2, a1).mul_(gr)
        k = torch.reciprocal(b1).sub_(torch.reciprocal(b2)).mul_(gs)
        slot = 2
        if need_x:
            torch.mul(mu_y, diff, out=m[slot]).sub_(k * mu_x).mul_(2.0)
            slot += 1
        if need_y:
            torch.mul(mu_x, diff, out=m[slot]).sub_(k * mu_y).mul_(2.0)
        back = _box_sum3(maps.mul_(inv)).split(channels, dim=1)
        g_sq, g_xy = back[0], back[1]
        grad_x = back[2].addcmul(x, g_sq, value=2.0).addcmul_(y, g_xy) if need_x else None
        grad_y = back[-1].addcmul(y, g_sq, value=2.0).addcmul_(x, g_xy) if need_y else None
        return grad_x, grad_y


def ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """Per-pixel SSIM over 3 x 3 windows (Monodepth's photometric window).

    ``SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 +
    sigma_y^2 + C2))``, the full index of Wang et al. with ``C1 = 0.01^2``,
    ``C2 = 0.03^2``; eq. 4 of the seed paper writes only its structure term. Windows at
    the image border average their in-image pixels only.

    Args:
        x: (B, C, H, W) images in [0, 1].
        y: (B, C, H, W) images in [0, 1].

    Returns:
        (B, C, H, W) SSIM in [-1, 1], differentiable w.r.t. both images.
    """
    check_shape(x, ("B", "C", "H", "W"), "x")
    check_shape(y, tuple(x.shape), "y")
    return _SSIM.apply(x, y)


def mask_window(mask: Tensor, margin: int = 1) -> tuple[int, int, int, int]:
    """Rows and columns holding every non-zero mask pixel of a batch, grown by ``margin``.

    The photometric error of a pixel outside the mask is 0 and SSIM reads 1-pixel
    neighbourhoods, so computing the warp and the error on this window (margin 1) gives the
    same loss as the full crops for less work.

    Args:
        mask: (B, H, W) masks.
        margin: growth in pixels.

    Returns:
        ``(row0, row1, col0, col1)``, half-open; at least one pixel.
    """
    check_shape(mask, ("B", "H", "W"), "mask")
    height, width = mask.shape[1:]
    any_row = (mask != 0).any(dim=2).any(dim=0)
    any_col = (mask != 0).any(dim=1).any(dim=0)
    rows = torch.nonzero(any_row).squeeze(1)
    cols = torch.nonzero(any_col).squeeze(1)
    if rows.numel() == 0:
        return 0, 1, 0, 1
    return (
        max(int(rows[0]) - margin, 0),
        min(int(rows[-1]) + 1 + margin, height),
        max(int(cols[0]) - margin, 0),
        min(int(cols[-1]) + 1 + margin, width),
    )


def warp_from_other_view(
    source: Tensor,
    disparity: Tensor,
    valid: Tensor,
    target_box: Tensor,
    source_box: Tensor,
    target_is_right: bool | Tensor,
    target_size: int | None = None,
    origin: tuple[int, int] = (0, 0),
) -> Tensor:
    """Warp the other view's crop into the target crop with a disparity map (bilinear).

    Args:
        source: (B, C, Hs, Ws) crop of the other view.
        disparity: (B, H, W) ``u_l - u_r`` in full-image pixels at each target pixel.
        valid: (B, H, W) bool or float, where the disparity is defined (the rendered hand).
            Elsewhere the warped image is 0 (only the hand region is warped).
        target_box: (B, 3) ``[x0, y0, side]`` of the target crop, image pixels.
        source_box: (B, 3) ``[x0, y0, side]`` of the source crop, image pixels.
        target_is_right: True when the target is the right view (sample the left view at
            ``x + d``), False for the left view (sample the right view at ``x - d``); or a
            (B,) bool tensor to mix both in one batch.
        target_size: side S of the target crop in pixels; defaults to W (the maps cover the
            whole crop).
        origin: ``(row, col)`` of the maps' first pixel in the target crop, when they cover
            only a window of it (see :func:`mask_window`).

    Returns:
        (B, C, H, W) warped source; 0 outside ``valid`` and where the match falls outside the
        source crop. Differentiable w.r.t. ``source`` and ``disparity``.
    """
    dims = check_shape(source, ("B", "C", None, None), "source")
    d = check_shape(disparity, (dims["B"], "H", "W"), "disparity")
    check_shape(valid, (dims["B"], d["H"], d["W"]), "valid")
    check_shape(target_box, (dims["B"], 3), "target_box")
    check_shape(source_box, (dims["B"], 3), "source_box")
    height, width = d["H"], d["W"]
    size = width if target_size is None else target_size
    src_h, src_w = source.shape[-2:]
    dtype, device = source.dtype, source.device
    if isinstance(target_is_right, Tensor):
        check_shape(target_is_right, (dims["B"],), "target_is_right")
        sign = target_is_right.to(dtype) * 2.0 - 1.0
    else:
        sign = torch.full(
            (dims["B"],), 1.0 if target_is_right else -1.0, dtype=dtype, device=device
        )
    t_step = (target_box[:, 2] / size)[:, None, None]  # image pixels per target crop pixel
    s_scale = (src_w / source_box[:, 2])[:, None, None]  # source crop pixels per image pixel
    cols = torch.arange(origin[1], origin[1] + width, dtype=dtype, device=device)
    rows = torch.arange(origin[0], origin[0] + height, dtype=dtype, device=device)
    x_img = (
        target_box[:, 0, None, None]
        + cols[None, None, :] * t_step
        + sign[:, None, None] * disparity
    )
    y_img = target_box[:, 1, None, None] + rows[None, :, None] * t_step
    x_src = (x_img - source_box[:, 0, None, None]) * s_scale
    y_src = ((y_img - source_box[:, 1, None, None]) * s_scale).expand_as(x_src)
    grid = torch.stack(
        [x_src * (2.0 / max(src_w - 1, 1)) - 1.0, y_src * (2.0 / max(src_h - 1, 1)) - 1.0], dim=-1
    )
    warped = nnf.grid_sample(
        source, grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return warped * valid.to(dtype)[:, None]


#: ITU-R BT.601 luma weights of R, G, B.
_LUMA = (0.299, 0.587, 0.114)


def _luma(images: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) BT.601 luma; other channel counts: channel mean."""
    if images.shape[1] != 3:
        return images.mean(dim=1, keepdim=True)
    w = images.new_tensor(_LUMA)[None, :, None, None]
    return (images * w).sum(dim=1, keepdim=True)


def photometric_error(
    target: Tensor,
    warped: Tensor,
    mask: Tensor,
    alpha: float = 0.85,
    ssim_on_luma: bool = False,
) -> Tensor:
    """Masked photometric error of eq. 3, per sample.

    ``alpha / 2 * (1 - SSIM(I~ M, I M)) + (1 - alpha) * |I~ M - I M|`` per pixel, SSIM and
    L1 averaged over the channels, then averaged over the mask: ``sum(M * e) / sum(M)``;
    0 for a sample with an empty mask.

    Args:
        target: (B, C, H, W) target crop in [0, 1].
        warped: (B, C, H, W) other view warped into the target (0 off the hand).
        mask: (B, H, W) hand mask of the target view in [0, 1] (e.g. skin detection).
        alpha: SSIM weight in [0, 1] (0.85 as in Monodepth).
        ssim_on_luma: compute SSIM on the BT.601 luma of RGB images instead of per channel
            (the L1 term stays per channel). SSIM was defined on grey levels and dominates
            the cost of this loss: this is ~3x cheaper; the default, per channel, is
            Monodepth's choice.

    Returns:
        (B,) errors (dimensionless; images in [0, 1]).
    """
    dims = check_shape(target, ("B", "C", "H", "W"), "target")
    check_shape(warped, tuple(target.shape), "warped")
    check_shape(mask, (dims["B"], dims["H"], dims["W"]), "mask")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha expected a value in [0, 1]; got {alpha}")
    m = mask.to(target.dtype)[:, None]
    t_m = target * m
    w_m = warped * m
    per_pixel = (1.0 - alpha) * (w_m - t_m).abs().mean(dim=1)
    if alpha > 0.0:
        if ssim_on_luma:
            ssim = ssim_map(_luma(w_m), _luma(t_m))[:, 0]
        else:
            ssim = ssim_map(w_m, t_m).mean(dim=1)
        per_pixel = per_pixel + (alpha / 2.0) * (1.0 - ssim)
    m = m[:, 0]
    return (per_pixel * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1e-6)


def photo_consistency_loss(
    target_image: Tensor,
    source_image: Tensor,
    target_depth: Tensor,
    target_mask: Tensor,
    target_box: Tensor,
    source_box: Tensor,
    focal_baseline: Tensor,
    target_is_right: bool | Tensor,
    disparity_offset: Tensor | float = 0.0,
    alpha: float = 0.85,
    ssim_on_luma: bool = False,
) -> Tensor:
    """Photo-consistency of one branch (eqs. 2-4), averaged over the batch.

    Renders are done by the caller: ``target_depth`` is the estimated mesh of the target
    view rendered into the target crop. Depth becomes disparity ``d = fx * B / z +
    offset`` (eq. 2), the other view is warped into the target with it (only where depth
    exists; background 0) and compared with the target inside ``target_mask`` (eq. 3). See
    the module docstring for the crop geometry.

    Args:
        target_image: (B, C, S, S) target crop in [0, 1].
        source_image: (B, C, S', S') other view's crop in [0, 1].
        target_depth: (B, S, S) rendered depth, metres (0 = no surface).
        target_mask: (B, S, S) hand mask of the target crop in [0, 1].
        target_box: (B, 3) target crop ``[x0, y0, side]``, image pixels.
        source_box: (B, 3) source crop ``[x0, y0, side]``, image pixels.
        focal_baseline: (B,) ``fx * B`` of the rectified pair, pixel metres.
        target_is_right: see :func:`warp_from_other_view`.
        disparity_offset: ``cx_l - cx_r`` in pixels, float or (B,).
        alpha: SSIM weight (default 0.85).
        ssim_on_luma: SSIM on luma instead of per channel (see :func:`photometric_error`).

    Returns:
        Scalar loss (dimensionless).

    Examples:
        >>> img = torch.rand(1, 3, 32, 32)
        >>> depth = torch.full((1, 32, 32), 0.5)
        >>> box = torch.tensor([[100.0, 100.0, 64.0]])
        >>> mask = torch.ones(1, 32, 32)
        >>> loss = photo_consistency_loss(
        ...     img, img, depth, mask, box, box, torch.tensor([98.0]), True)
        >>> loss.shape
        torch.Size([])
    """
    dims = check_shape(target_depth, ("B", "H", "W"), "target_depth")
    offset = torch.as_tensor(
        disparity_offset, dtype=target_depth.dtype, device=target_depth.device
    )
    if offset.ndim not in (0, 1) or (offset.ndim == 1 and offset.shape[0] != dims["B"]):
        raise ShapeError(
            f"disparity_offset expected a float or shape ({dims['B']},); got {tuple(offset.shape)}"
        )
    check_shape(target_mask, (dims["B"], dims["H"], dims["W"]), "target_mask")
    # Only the mask's window (and its 1-pixel SSIM neighbourhood) contributes.
    r0, r1, c0, c1 = mask_window(target_mask)
    depth = target_depth[:, r0:r1, c0:c1]
    valid = depth > 0
    disparity = disparity_from_depth(depth, focal_baseline)
    disparity = disparity + (offset[:, None, None] if offset.ndim == 1 else offset) * valid
    warped = warp_from_other_view(
        source_image,
        disparity,
        valid,
        target_box,
        source_box,
        target_is_right,
        target_size=dims["W"],
        origin=(r0, c0),
    )
    target = target_image[:, :, r0:r1, c0:c1]
    mask = target_mask[:, r0:r1, c0:c1]
    return photometric_error(target, warped, mask, alpha, ssim_on_luma).mean()


class PhotoConsistencyLoss(nn.Module):
    """:func:`photo_consistency_loss` as a module.

    Args:
        alpha: SSIM weight (default 0.85).
        ssim_on_luma: SSIM on luma instead of per channel (see :func:`photometric_error`).
    """

    def __init__(self, alpha: float = 0.85, ssim_on_luma: bool = False) -> None:
        super().__init__()
        if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
            raise ConfigError(f"alpha expected a value in [0, 1]; got {alpha}")
        self.alpha = alpha
        self.ssim_on_luma = ssim_on_luma

    def forward(
        self,
        target_image: Tensor,
        source_image: Tensor,
        target_depth: Tensor,
        target_mask: Tensor,
        target_box: Tensor,
        source_box: Tensor,
        focal_baseline: Tensor,
        target_is_right: bool | Tensor,
        disparity_offset: Tensor | float = 0.0,
    ) -> Tensor:
        """See :func:`photo_consistency_loss`."""
        return photo_consistency_loss(
            target_image,
            source_image,
            target_depth,
            target_mask,
            target_box,
            source_box,
            focal_baseline,
            target_is_right,
            disparity_offset,
            self.alpha,
            self.ssim_on_luma,
        )
