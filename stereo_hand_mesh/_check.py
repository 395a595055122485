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
    return "(" + ", ".join("*" if s is None else str(s) for s in spec) + ")"


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
    shape = tuple(getattr(x, "shape", ()))
    if not hasattr(x, "shape"):
        raise ShapeError(f"{name} expected an array of shape {_shape_str(spec)}; got {type(x)}")
    spec = list(spec)
    if spec and spec[0] == "*":
        spec = spec[1:]
        if len(shape) < len(spec):
            raise ShapeError(f"{name} expected shape (*, {_shape_str(spec)[1:]}; got {shape}")
        shape = shape[len(shape) - len(spec) :]
    if len(shape) != len(spec):
        raise ShapeError(f"{name} expected shape {_shape_str(spec)}; got {tuple(x.shape)}")
    bound: dict[str, int] = {}
    for size, want in zip(shape, spec, strict=True):
        if want is None:
            continue
        if isinstance(want, str):
            if want in bound and bound[want] != size:
                raise ShapeError(
                    f"{name} expected shape {_shape_str(spec)} with equal '{want}' sizes; "
                    f"got {tuple(x.shape)}"
                )
            bound[want] = int(size)
        elif size != want:
            raise ShapeError(f"{name} expected shape {_shape_str(spec)}; got {tuple(x.shape)}")
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
