"""Mask loss of eq. 7: rendered soft silhouette against a skin-detection mask."""

from __future__ import annotations

from torch import Tensor, nn

from stereo_hand_mesh._check import check_shape

__all__ = ["MaskLoss", "mask_loss"]


def mask_loss(silhouette: Tensor, target_mask: Tensor) -> Tensor:
    """``mean over batch and pixels of (A - M)^2`` (eq. 7, normalized by the pixel count).

    Args:
        silhouette: (B, H, W) rendered soft silhouette in [0, 1]
            (:func:`stereo_hand_mesh.render.soft_silhouette`).
        target_mask: (B, H, W) hand mask in [0, 1] (e.g. from skin detection).

    Returns:
        Scalar in [0, 1].
    """
    check_shape(silhouette, ("B", "H", "W"), "silhouette")
    check_shape(target_mask, tuple(silhouette.shape), "target_mask")
    diff = silhouette - target_mask.to(silhouette.dtype)
    return (diff * diff).mean()


class MaskLoss(nn.Module):
    """:func:`mask_loss` as a module."""

    def forward(self, silhouette: Tensor, target_mask: Tensor) -> Tensor:
        """(B, H, W), (B, H, W) -> scalar."""
        return mask_loss(silhouette, target_mask)
