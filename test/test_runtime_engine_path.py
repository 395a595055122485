"""The TensorRT engine cache path is confined to engine_cache_dir (issue 8, security)."""

from __future__ import annotations

import os

import pytest

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.runtime.engine_path import confined_engine_path


def test_default_engine_is_named_after_the_model_inside_the_cache(tmp_path):
    cache = tmp_path / "engines"
    assert confined_engine_path("", cache, "") == cache.resolve() / "default.plan"
    got = confined_engine_path("", cache, "/models/adapted/run3.onnx")
    assert got == cache.resolve() / "run3.plan"  # never next to the model
    assert confined_engine_path("sub/m.engine", cache, "") == cache.resolve() / "sub/m.engine"
    inside = cache.resolve() / "m.plan"
    assert confined_engine_path(str(inside), cache, "") == inside


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/etc/passwd", "ending in .plan or .engine"),
        ("m.onnx", "ending in .plan or .engine"),
        ("/etc/x.plan", "inside engine_cache_dir"),
        ("../x.plan", "inside engine_cache_dir"),
        ("sub/../../x.plan", "inside engine_cache_dir"),
        ("~/x.plan", "inside engine_cache_dir"),
    ],
)
def test_paths_outside_the_cache_are_refused(tmp_path, value, expected):
    with pytest.raises(ConfigError, match=expected):
        confined_engine_path(value, tmp_path / "engines", "")


def test_a_symlink_out_of_the_cache_is_refused(tmp_path):
    cache = tmp_path / "engines"
    cache.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, cache / "link")
    with pytest.raises(ConfigError, match="resolves to"):
        confined_engine_path("link/x.plan", cache, "")
