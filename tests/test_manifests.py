"""Describing generated content: validation, prompt privacy, templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manifests import (
    Action,
    DigitalSourceType,
    GenerationInfo,
    ManifestDefinitionError,
    TrainingMining,
    TrainingUse,
    template_path,
)


def test_defaults_describe_ai_generated_media() -> None:
    definition = GenerationInfo(generator="g").manifest_definition()
    created = definition["assertions"][0]["data"]["actions"][0]
    assert created == {
        "action": "c2pa.created",
        "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
    }
    training = next(a for a in definition["assertions"] if a["label"] == "cawg.training-mining")
    assert training["data"]["entries"]["cawg.ai_training"] == {"use": "notAllowed"}


def test_prompt_is_digested_unless_asked() -> None:
    info = GenerationInfo(generator="g", prompt="a red fox")
    text = json.dumps(info.manifest_definition())
    assert "a red fox" not in text and info.prompt_sha256 in text  # type: ignore[operator]
    stored = GenerationInfo(generator="g", prompt="a red fox", store_prompt=True)
    assert "a red fox" in json.dumps(stored.manifest_definition())


@pytest.mark.parametrize(
    "value",
    [
        "compositeWithTrainedAlgorithmicMedia",
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
    ],
)
def test_source_type_by_term_or_uri(value: str) -> None:
    info = GenerationInfo(generator="g", digital_source_type=value)  # type: ignore[arg-type]
    assert info.digital_source_type is DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"generator": ""}, "generator"),
        ({"generator": "g", "digital_source_type": "madeUp"}, "unknown digital source type"),
        ({"generator": "g", "model": 3}, "model: expected text"),
        ({"generator": "g", "custom_assertions": {"c2pa.hash.data": {}}}, "reserved"),
        ({"generator": "g", "custom_assertions": {"bad label!": {}}}, "reverse-domain"),
        ({"generator": "g", "custom_assertions": {"com.x": {1, 2}}}, "JSON-serialisable"),
    ],
)
def test_invalid_descriptions_say_which_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ManifestDefinitionError, match=message):
        GenerationInfo(**kwargs)  # type: ignore[arg-type]


def test_constrained_training_needs_constraint_info() -> None:
    with pytest.raises(ManifestDefinitionError, match="constraint_info"):
        GenerationInfo(
            generator="g", training_mining=TrainingMining(ai_inference=TrainingUse.CONSTRAINED)
        ).manifest_definition()


def test_extra_actions_follow_created() -> None:
    info = GenerationInfo(generator="g").with_actions(Action("c2pa.watermarked"))
    actions = info.manifest_definition()["assertions"][0]["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.created", "c2pa.watermarked"]


@pytest.mark.parametrize("name", ["generated-image", "composite", "generated-audio"])
def test_bundled_templates_load(name: str) -> None:
    info = GenerationInfo.from_template(template_path(name))
    assert info.generator


def test_template_overrides_and_errors(tmp_path: Path) -> None:
    info = GenerationInfo.from_template(template_path("generated-image"), model="override")
    assert info.model == "override"
    bad = tmp_path / "bad.json"
    bad.write_text('{"generator": "g", "colour": "blue"}')
    with pytest.raises(ManifestDefinitionError, match=r"unknown field.*colour"):
        GenerationInfo.from_template(bad)
    bad.write_text("{not json")
    with pytest.raises(ManifestDefinitionError, match="not a valid JSON template"):
        GenerationInfo.from_template(bad)
    with pytest.raises(ManifestDefinitionError, match="no template named"):
        template_path("nope")
