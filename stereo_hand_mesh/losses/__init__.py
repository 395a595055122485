"""The six losses of the seed paper's self-supervised stereo objective, and their total.

Photo-consistency (eqs. 2-4), edge (5), Laplacian (6), mask (7), Chamfer (8) and normal
consistency (9), each a function (scalar, documented normalization) with an ``nn.Module``
twin; :func:`stereo_self_supervised_loss` renders both views and weighs every term (eq. 10).
"""

from stereo_hand_mesh.losses.mask import MaskLoss, mask_loss
from stereo_hand_mesh.losses.mesh import (
    ChamferLoss,
    EdgeLengthLoss,
    LaplacianLoss,
    MeshTopology,
    NormalConsistencyLoss,
    chamfer_loss,
    edge_length_loss,
    laplacian_loss,
    mesh_topology,
    nearest_neighbours,
    normal_consistency_loss,
)
from stereo_hand_mesh.losses.photometric import (
    PhotoConsistencyLoss,
    mask_window,
    photo_consistency_loss,
    photometric_error,
    ssim_map,
    warp_from_other_view,
)
from stereo_hand_mesh.losses.stereo import (
    StereoCropBatch,
    StereoLossSettings,
    StereoLossTerms,
    StereoLossWeights,
    StereoSelfSupervisedLoss,
    stereo_self_supervised_loss,
)

__all__ = [
    "ChamferLoss",
    "EdgeLengthLoss",
    "LaplacianLoss",
    "MaskLoss",
    "MeshTopology",
    "NormalConsistencyLoss",
    "PhotoConsistencyLoss",
    "StereoCropBatch",
    "StereoLossSettings",
    "StereoLossTerms",
    "StereoLossWeights",
    "StereoSelfSupervisedLoss",
    "chamfer_loss",
    "edge_length_loss",
    "laplacian_loss",
    "mask_loss",
    "mask_window",
    "mesh_topology",
    "nearest_neighbours",
    "normal_consistency_loss",
    "photo_consistency_loss",
    "photometric_error",
    "ssim_map",
    "stereo_self_supervised_loss",
    "warp_from_other_view",
]
