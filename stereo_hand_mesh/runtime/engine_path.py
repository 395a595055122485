"""Where a node may write a TensorRT engine: inside one configured cache directory.

The engine cache is the only file ``hand_mesh_node`` writes (the engine, its ``.json`` cache
key beside it and a ``.tmp`` file while it is written). Its path comes from parameters that
can be set at run time (``engine_file_path``, and ``model_file_path`` whose stem names the
default engine), so the node confines it to ``engine_cache_dir``, a start-up parameter:
nothing a ``set_parameters`` call or a service names can write elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from stereo_hand_mesh.errors import ConfigError

__all__ = ["ENGINE_SUFFIXES", "confined_engine_path"]

#: File name endings accepted for a TensorRT engine.
ENGINE_SUFFIXES = (".plan", ".engine")


def confined_engine_path(
    engine_file_path: str, cache_dir: str | os.PathLike[str], model_file_path: str
) -> Path:
    """The engine file to use, checked to lie inside ``cache_dir``.

    Args:
        engine_file_path: the parameter's value: empty for the default
            ``<cache_dir>/<model stem>.plan`` (``default.plan`` for the shipped model); a
            relative path is taken inside ``cache_dir``; an absolute one must lie in it.
        cache_dir: the engine cache directory (``~`` expanded); need not exist yet.
        model_file_path: the model's path, empty for the shipped default.

    Returns:
        The absolute engine path, symbolic links and ``..`` resolved.

    Raises:
        ConfigError: the path does not end in ``.plan`` or ``.engine``, or resolves outside
            ``cache_dir``.
    """
    root = Path(cache_dir).expanduser().resolve()
    if not engine_file_path:
        stem = Path(model_file_path).stem if model_file_path else "default"
        engine_file_path = f"{stem}.plan"
    if not engine_file_path.endswith(ENGINE_SUFFIXES):
        raise ConfigError(
            f"engine_file_path expected a file ending in {' or '.join(ENGINE_SUFFIXES)}; "
            f"got {engine_file_path!r}"
        )
    path = (root / Path(engine_file_path).expanduser()).resolve()
    if path.parent != root and root not in path.parents:
        raise ConfigError(
            f"engine_file_path expected a file inside engine_cache_dir {root}; got "
            f"{engine_file_path!r}, which resolves to {path}"
        )
    return path
