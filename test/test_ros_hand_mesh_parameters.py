"""hand_mesh_node's pipeline parameters: one source (the settings dataclasses) for the defaults,
the ParamSpec table, the generated YAML and the mapping back onto PipelineSettings."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from stereo_hand_mesh.pipeline.estimator import PipelineSettings
from stereo_hand_mesh.pipeline.locator import LocatorSettings
from stereo_hand_mesh.ros.hand_mesh_parameters import (
    HAND_MESH_PARAMETERS,
    LOCATOR_PREFIX,
    PIPELINE_PARAMETERS,
    pipeline_settings_from,
)
from stereo_hand_mesh.ros.parameters import validate_value

CONFIG = Path(__file__).resolve().parents[1] / "config" / "hand_mesh.yaml"

#: Every parameter that sets a pipeline setting (adding one is a deliberate change here).
EXPECTED = {
    "handedness",
    "max_hands",
    "new_hand_search_period",
    "min_presence",
    "palm_min_score",
    "stereo_row_tolerance",
    "refine_cold_start",
    "published_joints",
    "blend_residual_px",
    "min_confidence",
    "min_hand_extent_m",
    "max_hand_extent_m",
    "confidence_sigma_crop",
    "confidence_sigma_m",
    "confidence_sigma_px",
    "smoothing",
    "filter_min_cutoff_hz",
    "filter_beta",
    "tracking",
    *(
        LOCATOR_PREFIX + name
        for name in (
            "margin",
            "min_area_px",
            "max_candidates",
            "max_disparity_px",
            "min_match_score",
            "min_tracking_score",
            "stereo_candidates",
        )
    ),
}


def _field_value(settings: PipelineSettings, name: str) -> object:
    if name.startswith(LOCATOR_PREFIX):
        return getattr(settings.locator, name[len(LOCATOR_PREFIX) :])
    return getattr(settings, name)


def test_the_pipeline_parameters_are_the_expected_ones():
    assert {s.name for s in PIPELINE_PARAMETERS} == EXPECTED
    names = [s.name for s in HAND_MESH_PARAMETERS]
    assert len(names) == len(set(names))
    # Parameters that set nothing in the pipeline share no field name with the settings.
    scalar_fields = {f.name for f in fields(PipelineSettings)} | {
        LOCATOR_PREFIX + f.name for f in fields(LocatorSettings)
    }
    assert (set(names) - EXPECTED) & scalar_fields == set()
    assert all(s.live for s in PIPELINE_PARAMETERS)


def test_yaml_paramspec_and_dataclass_defaults_agree():
    doc = yaml.safe_load(CONFIG.read_text())["hand_mesh_node"]["ros__parameters"]
    defaults = PipelineSettings()
    for spec in PIPELINE_PARAMETERS:
        field_default = _field_value(defaults, spec.name)
        for where, value in (("YAML", doc[spec.name]), ("ParamSpec", spec.default)):
            assert value == field_default and type(value) is type(field_default), (
                f"{spec.name}: {where} {value!r} vs dataclass default {field_default!r}"
            )
        validate_value(spec, spec.default)  # the default lies in the declared range


def test_pipeline_settings_from_maps_every_parameter_onto_its_field():
    values = {s.name: s.default for s in HAND_MESH_PARAMETERS}
    assert pipeline_settings_from(values) == PipelineSettings()
    for spec in PIPELINE_PARAMETERS:
        if isinstance(spec.default, bool):
            new = not spec.default
        elif spec.choices is not None:
            new = next(c for c in spec.choices if c != spec.default)
        elif isinstance(spec.default, int):
            new = spec.default + 1
        else:
            new = spec.default * 0.9
        new = validate_value(spec, new)
        settings = pipeline_settings_from({**values, spec.name: new})
        assert _field_value(settings, spec.name) == new, spec.name
        assert settings == pipeline_settings_from({**values, spec.name: new})


def test_a_missing_pipeline_parameter_is_an_error():
    values = {s.name: s.default for s in HAND_MESH_PARAMETERS}
    del values["locator_margin"]
    with pytest.raises(KeyError, match="locator_margin"):
        pipeline_settings_from(values)
