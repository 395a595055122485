"""The self-supervised stereo objective of the seed paper (eq. 10) over both branches.

Frames. Both estimated meshes are given in the **left optical frame** (metres), the frame
the product publishes: the left branch's mesh comes from the left crop, the right branch's
from the right crop (its x, y from the right view, expressed in the left frame by adding the
baseline along x). The right view is rendered from ``verts_right - (B, 0, 0)``, the right
camera's frame of a rectified pair.

Term names follow the view that is rendered and reconstructed: ``photo_left`` renders the
left mesh into the left crop, warps the right crop into it and compares with the left crop
inside the left hand mask (the paper's ``L_photo`` of the branch that renders that mesh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor, nn

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry.batched import (
    crop_intrinsics,
    disparity_from_depth,
    intrinsics_vector,
)
from stereo_hand_mesh.losses.mask import mask_loss
from stereo_hand_mesh.losses.mesh import (
    chamfer_loss,
    edge_length_loss,
    laplacian_loss,
    normal_consistency_loss,
)
from stereo_hand_mesh.losses.photometric import (
    mask_window,
    photometric_error,
    warp_from_other_view,
)
from stereo_hand_mesh.render.rasterizer import RasterSettings
from stereo_hand_mesh.render.silhouette import SoftRasterSettings, rasterize_with_silhouette

__all__ = [
    "StereoCropBatch",
    "StereoLossSettings",
    "StereoLossTerms",
    "StereoLossWeights",
    "StereoSelfSupervisedLoss",
    "stereo_self_supervised_loss",
]


@dataclass(frozen=True)
class StereoLossWeights:
    """Weights of eq. 10; the defaults are the paper's.

    Attributes:
        photo: photo-consistency (100).
        edge: edge length vs pseudo-labels (1).
        laplacian: uniform Laplacian (10).
        mask: soft silhouette vs hand mask (0.1).
        chamfer: left-right Chamfer (0.001).
        normal: left-right normal consistency (0.001).
    """

    photo: float = 100.0
    edge: float = 1.0
    laplacian: float = 10.0
    mask: float = 0.1
    chamfer: float = 0.001
    normal: float = 0.001

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ConfigError(
                    f"StereoLossWeights.{f.name} expected a finite value >= 0; got {value}"
                )


@dataclass(frozen=True)
class StereoLossSettings:
    """Settings of :func:`stereo_self_supervised_loss`.

    Attributes:
        weights: the loss weights of eq. 10.
        alpha: SSIM weight of the photometric error (eq. 3); 0.85 as in Monodepth.
        ssim_on_luma: SSIM on the luma of the crops instead of per RGB channel (the L1 term
            stays per channel): ~3x cheaper photo-consistency; off by default (Monodepth's
            per-channel SSIM).
        raster: hard rasterization settings. Back-face culling is on by default: hand meshes
            are closed, so the depth and the outline are unchanged and both rasterizers do
            half the work (see :class:`~stereo_hand_mesh.render.RasterSettings`).
        soft: soft silhouette settings for the mask loss.
        mesh_unit_m: the length unit, in metres, of the edge, Laplacian and Chamfer terms
            (their vertices are divided by it first; the normal term has no unit). The paper
            gives its weights without units. In metres (the default) the weighted mesh terms
            are 1e-4 to 1e-7 of the photo term, which matches the paper's Table 2 (removing
            the Laplacian, mask, Chamfer or normal term changes its error by <= 0.23 mm); in
            millimetres they dominate it and removing the Laplacian doubles our error
            (README, "Adaptation").
    """

    weights: StereoLossWeights = field(default_factory=StereoLossWeights)
    mesh_unit_m: float = 1.0
    alpha: float = 0.85
    ssim_on_luma: bool = False
    raster: RasterSettings = field(default_factory=lambda: RasterSettings(cull_backfaces=True))
    soft: SoftRasterSettings = field(default_factory=SoftRasterSettings)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mesh_unit_m) and self.mesh_unit_m > 0.0):
            raise ConfigError(
                f"StereoLossSettings.mesh_unit_m expected a finite value > 0; "
                f"got {self.mesh_unit_m}"
            )
        if not (math.isfinite(self.alpha) and 0.0 <= self.alpha <= 1.0):
            raise ConfigError(
                f"StereoLossSettings.alpha expected a value in [0, 1]; got {self.alpha}"
            )


@dataclass(frozen=True)
class StereoCropBatch:
    """B stereo pairs cut into square crops of side S, with the geometry of the cuts.

    The one crop type of training, from the crops to the losses: a crop set
    (:class:`~stereo_hand_mesh.train.crops.CropSet`, every pair of a source, uint8 on the
    CPU, plus its labels) is one, and :meth:`batch` takes a step's pairs from it as the
    float input of :func:`stereo_self_supervised_loss` and of the network. Not the product
    pipeline's rotated crops (:class:`stereo_hand_mesh.pipeline.estimator.StereoCrops`).

    Attributes:
        image_left: (B, C, S, S) left crops: uint8 0-255 as cut, or float in [0, 1] (what
            the loss reads; :meth:`batch` converts).
        image_right: (B, C, S, S) right crops, the same type.
        mask_left: (B, S, S) hand (skin) mask of the left crops, 0/1 (uint8) or in [0, 1].
        mask_right: (B, S, S) hand mask of the right crops.
        box_left: (B, 3) left crop boxes ``[x0, y0, side]``, pixels of the full rectified
            left image (:meth:`~stereo_hand_mesh.geometry.CropBox.as_array`).
        box_right: (B, 3) right crop boxes, pixels of the right image.
        intrinsics_left: (B, 4) ``[fx, fy, cx, cy]`` (or (B, 3, 3)) of the full rectified
            left image.
        intrinsics_right: (B, 4) or (B, 3, 3) of the right image (same fx, fy, cy).
        baseline: (B,) metres.

    Examples:
        >>> import torch
        >>> pairs = StereoCropBatch(
        ...     image_left=torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
        ...     image_right=torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
        ...     mask_left=torch.zeros(4, 8, 8, dtype=torch.uint8),
        ...     mask_right=torch.zeros(4, 8, 8, dtype=torch.uint8),
        ...     box_left=torch.zeros(4, 3, dtype=torch.float64),
        ...     box_right=torch.zeros(4, 3, dtype=torch.float64),
        ...     intrinsics_left=torch.zeros(4, 4, dtype=torch.float64),
        ...     intrinsics_right=torch.zeros(4, 4, dtype=torch.float64),
        ...     baseline=torch.zeros(4, dtype=torch.float64),
        ... )
        >>> step = pairs.batch(torch.tensor([0, 2]), torch.device("cpu"))
        >>> step.batch_size, step.image_left.dtype
        (2, torch.float32)
    """

    image_left: Tensor
    image_right: Tensor
    mask_left: Tensor
    mask_right: Tensor
    box_left: Tensor
    box_right: Tensor
    intrinsics_left: Tensor
    intrinsics_right: Tensor
    baseline: Tensor

    def __post_init__(self) -> None:
        dims = check_shape(self.image_left, ("B", "C", "S", "S"), "image_left")
        batch, size = dims["B"], dims["S"]
        check_shape(self.image_right, tuple(self.image_left.shape), "image_right")
        check_shape(self.mask_left, (batch, size, size), "mask_left")
        check_shape(self.mask_right, (batch, size, size), "mask_right")
        check_shape(self.box_left, (batch, 3), "box_left")
        check_shape(self.box_right, (batch, 3), "box_right")
        check_shape(intrinsics_vector(self.intrinsics_left), (batch, 4), "intrinsics_left")
        check_shape(intrinsics_vector(self.intrinsics_right), (batch, 4), "intrinsics_right")
        check_shape(self.baseline, (batch,), "baseline")

    @property
    def batch_size(self) -> int:
        """B."""
        return self.image_left.shape[0]

    @property
    def size(self) -> int:
        """Crop side S, pixels."""
        return self.image_left.shape[-1]

    def batch(self, rows: Tensor, device: torch.device) -> StereoCropBatch:
        """The pairs at ``rows`` on ``device``, every field float32: the loss's input.

        uint8 images are scaled to [0, 1] (float32, then divided by 255); everything else
        keeps its values.

        Args:
            rows: (B',) int64 positions of the pairs.
            device: where the batch goes.

        Returns:
            A :class:`StereoCropBatch` of B' pairs (only the nine crop fields, whatever
            subclass ``self`` is).
        """

        def pick(t: Tensor) -> Tensor:
            return t.index_select(0, rows).to(device=device, dtype=torch.float32)

        def pick_image(t: Tensor) -> Tensor:
            return pick(t) / 255.0 if t.dtype == torch.uint8 else pick(t)

        return StereoCropBatch(
            image_left=pick_image(self.image_left),
            image_right=pick_image(self.image_right),
            mask_left=pick(self.mask_left),
            mask_right=pick(self.mask_right),
            box_left=pick(self.box_left),
            box_right=pick(self.box_right),
            intrinsics_left=pick(self.intrinsics_left),
            intrinsics_right=pick(self.intrinsics_right),
            baseline=pick(self.baseline),
        )


@dataclass(frozen=True)
class StereoLossTerms:
    """Every term of eq. 10 (scalars) and their weighted total.

    Lengths are in :attr:`StereoLossSettings.mesh_unit_m` (m^2 below is the default).

    Attributes:
        photo_left: photo-consistency reconstructing the left view.
        photo_right: photo-consistency reconstructing the right view.
        edge_left: edge loss of the left branch vs its pseudo-label, m^2.
        edge_right: edge loss of the right branch, m^2.
        laplacian_left: Laplacian of the left mesh, m^2.
        laplacian_right: Laplacian of the right mesh, m^2.
        mask_left: mask loss of the left view.
        mask_right: mask loss of the right view.
        chamfer: Chamfer distance between the two meshes, m^2.
        normal: normal consistency between the two meshes.
        total: the weighted sum of eq. 10.
    """

    photo_left: Tensor
    photo_right: Tensor
    edge_left: Tensor
    edge_right: Tensor
    laplacian_left: Tensor
    laplacian_right: Tensor
    mask_left: Tensor
    mask_right: Tensor
    chamfer: Tensor
    normal: Tensor
    total: Tensor

    def as_dict(self) -> dict[str, Tensor]:
        """Name -> scalar tensor, in field order (for logging)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def stereo_self_supervised_loss(
    verts_left: Tensor,
    verts_right: Tensor,
    pseudo_left: Tensor,
    pseudo_right: Tensor,
    faces: Tensor,
    crops: StereoCropBatch,
    settings: StereoLossSettings | None = None,
) -> StereoLossTerms:
    """All six losses of the seed paper over both branches, and their weighted total (eq. 10).

    Both views are rendered in one batch of 2B (depth for the photo-consistency, soft
    silhouette for the mask loss); each term is a mean over its batch.

    Args:
        verts_left: (B, V, 3) left-branch mesh, metres, left optical frame.
        verts_right: (B, V, 3) right-branch mesh, metres, left optical frame.
        pseudo_left: (B, V, 3) pseudo-label of the left branch (frozen pre-trained model).
        pseudo_right: (B, V, 3) pseudo-label of the right branch.
        faces: (F, 3) int64 topology shared by all meshes.
        crops: the stereo crops, masks and geometry; images float in [0, 1] (see
            :meth:`StereoCropBatch.batch`).
        settings: weights and rendering settings; defaults to ``StereoLossSettings()``.

    Returns:
        :class:`StereoLossTerms`; ``total`` is differentiable w.r.t. both meshes.

    Raises:
        ShapeError: on wrong shapes.
    """
    settings = settings or StereoLossSettings()
    batch, size = crops.batch_size, crops.size
    check_shape(verts_left, (batch, "V", 3), "verts_left")
    for name, t in (
        ("verts_right", verts_right),
        ("pseudo_left", pseudo_left),
        ("pseudo_right", pseudo_right),
    ):
        if tuple(t.shape) != tuple(verts_left.shape):
            raise ShapeError(
                f"{name} expected shape {tuple(verts_left.shape)}; got {tuple(t.shape)}"
            )
    dtype = verts_left.dtype
    k_left = intrinsics_vector(crops.intrinsics_left).to(dtype)
    k_right = intrinsics_vector(crops.intrinsics_right).to(dtype)
    baseline = crops.baseline.to(dtype)
    box_l, box_r = crops.box_left.to(dtype), crops.box_right.to(dtype)

    # Render both views as one batch of 2B: the right mesh in the right camera's frame.
    shift = torch.stack([baseline, torch.zeros_like(baseline), torch.zeros_like(baseline)], dim=1)
    verts_cam = torch.cat([verts_left, verts_right - shift[:, None, :]])
    k_crop = torch.cat(
        [crop_intrinsics(k_left, box_l, size), crop_intrinsics(k_right, box_r, size)]
    )
    fragments, silhouette = rasterize_with_silhouette(
        verts_cam, faces, k_crop, (size, size), settings.soft, settings.raster
    )

    # Photo-consistency (eqs. 2-4): left target <- right source, right target <- left source,
    # on the window of the masks (the error is 0 elsewhere; SSIM reads 1-pixel neighbours).
    masks = torch.cat([crops.mask_left, crops.mask_right]).to(dtype)
    r0, r1, c0, c1 = mask_window(masks)
    focal_baseline = (k_left[:, 0] * baseline).repeat(2)
    offset = (k_left[:, 2] - k_right[:, 2]).repeat(2)
    valid = fragments.mask[:, r0:r1, c0:c1]
    disparity = disparity_from_depth(fragments.depth[:, r0:r1, c0:c1], focal_baseline)
    disparity = disparity + offset[:, None, None] * valid
    is_right = torch.arange(2 * batch, device=verts_left.device) >= batch
    warped = warp_from_other_view(
        torch.cat([crops.image_right, crops.image_left]).to(dtype),
        disparity,
        valid,
        torch.cat([box_l, box_r]),
        torch.cat([box_r, box_l]),
        is_right,
        target_size=size,
        origin=(r0, c0),
    )
    target = torch.cat([crops.image_left, crops.image_right]).to(dtype)[:, :, r0:r1, c0:c1]
    photo = photometric_error(
        target, warped, masks[:, r0:r1, c0:c1], settings.alpha, settings.ssim_on_luma
    )

    w = settings.weights
    unit = 1.0 / settings.mesh_unit_m
    mesh_l, mesh_r = verts_left * unit, verts_right * unit
    terms = {
        "photo_left": photo[:batch].mean(),
        "photo_right": photo[batch:].mean(),
        "edge_left": edge_length_loss(mesh_l, pseudo_left * unit, faces),
        "edge_right": edge_length_loss(mesh_r, pseudo_right * unit, faces),
        "laplacian_left": laplacian_loss(mesh_l, faces),
        "laplacian_right": laplacian_loss(mesh_r, faces),
        "mask_left": mask_loss(silhouette[:batch], crops.mask_left),
        "mask_right": mask_loss(silhouette[batch:], crops.mask_right),
        "chamfer": chamfer_loss(mesh_l, mesh_r),
        "normal": normal_consistency_loss(verts_left, verts_right, faces),
    }
    total = (
        w.photo * (terms["photo_left"] + terms["photo_right"])
        + w.edge * (terms["edge_left"] + terms["edge_right"])
        + w.laplacian * (terms["laplacian_left"] + terms["laplacian_right"])
        + w.mask * (terms["mask_left"] + terms["mask_right"])
        + w.chamfer * terms["chamfer"]
        + w.normal * terms["normal"]
    )
    return StereoLossTerms(**terms, total=total)


class StereoSelfSupervisedLoss(nn.Module):
    """:func:`stereo_self_supervised_loss` for a fixed topology.

    Args:
        faces: (F, 3) int64 topology of the hand mesh.
        settings: weights and rendering settings.
    """

    def __init__(self, faces: Tensor, settings: StereoLossSettings | None = None) -> None:
        super().__init__()
        check_shape(faces, ("F", 3), "faces")
        self.register_buffer("faces", faces.long().clone())
        self.settings = settings or StereoLossSettings()

    def forward(
        self,
        verts_left: Tensor,
        verts_right: Tensor,
        pseudo_left: Tensor,
        pseudo_right: Tensor,
        crops: StereoCropBatch,
    ) -> StereoLossTerms:
        """See :func:`stereo_self_supervised_loss`."""
        return stereo_self_supervised_loss(
            verts_left, verts_right, pseudo_left, pseudo_right, self.faces, crops, self.settings
        )
