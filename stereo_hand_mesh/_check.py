"""Input validation helpers shared by every layer (numpy arrays and torch tensors alike).

Each helper raises :class:`~stereo_hand_mesh.errors.ShapeError` with a message of the form
``"<name> expected shape (B, V, 3); got (2, 778)"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stereo_hand_mesh.errors import ShapeError

__all__ = ["check_finite", "check_shape"]


def _shape_str(spec: Sequence[int | str | None]) -> str:
    """``("*", 3)`` -> ``"(*, 3)"``; ``(2,)`` -> ``"(2,)"``; None (any size) prints as ``*``."""
    parts = ["*" if s is None else str(s) for s in spec]
    return "(" + parts[0] + ",)" if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def check_shape(x: Any, spec: Sequence[int | str | None], name: str) -> dict[str, int]:
    """Check that ``x.shape`` matches ``spec`` and return the sizes bound to letters.

    Args:
        x: numpy array or torch tensor.
        spec: one entry per dimension: an int (exact size), a str (a size bound by name,
            equal wherever the same name appears) or None (any size). A leading ``"*"``
            allows any number of leading dimensions.
        name: argument name used in the error message.

    Returns:
        Mapping from each letter in ``spec`` to the size it bound.

    Raises:
        ShapeError: when the rank or a size does not match.
    """
    wanted = _shape_str(spec)
    if not hasattr(x, "shape"):
        raise ShapeError(f"{name} expected an array of shape {wanted}; got {type(x)}")
    full = tuple(x.shape)
    dims = list(spec)
    leading = bool(dims) and dims[0] == "*"
    if leading:
        dims = dims[1:]
    if len(full) < len(dims) if leading else len(full) != len(dims):
        raise ShapeError(f"{name} expected shape {wanted}; got {full}")
    bound: dict[str, int] = {}
    for size, want in zip(full[len(full) - len(dims) :], dims, strict=True):
        if want is None:
            continue
        if isinstance(want, str):
            if want in bound and bound[want] != size:
                raise ShapeError(
                    f"{name} expected shape {wanted} with equal '{want}' sizes; got {full}"
                )
            bound[want] = int(size)
        elif size != want:
            raise ShapeError(f"{name} expected shape {wanted}; got {full}")
    return bound


def check_finite(x: Any, name: str) -> None:
    """Raise ShapeError if ``x`` (numpy array or torch tensor) holds NaN or inf."""
    try:
        import numpy as np

        if isinstance(x, np.ndarray):
            ok = bool(np.isfinite(x).all())
        else:
            ok = bool(x.isfinite().all())
    except AttributeError as err:  # pragma: no cover - defensive
        raise ShapeError(f"{name} expected a numeric array; got {type(x)}") from err
    if not ok:
        raise ShapeError(f"{name} expected finite values; got NaN or inf")
