"""How generated content is described: typed, validated manifest definitions.

Describe an image an AI model made and get the C2PA manifest definition the
signer needs::

    >>> from manifests import GenerationInfo, DigitalSourceType
    >>> info = GenerationInfo(
    ...     generator="acme-studio", generator_version="2.1",
    ...     model="acme-diffusion", model_version="xl-1.0",
    ...     prompt="a lighthouse at dawn",
    ... )
    >>> definition = info.manifest_definition(title="lighthouse.png")
    >>> definition["assertions"][0]["data"]["actions"][0]["action"]
    'c2pa.created'
    >>> "a lighthouse at dawn" in str(definition)    # only its digest is stored
    False

JSON templates a user can copy and edit live in ``manifests/templates/``; load
one with :func:`GenerationInfo.from_template`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = [
    "IPTC_PREFIX",
    "PROVENANCE_ASSERTION",
    "Action",
    "DigitalSourceType",
    "EditInfo",
    "GenerationInfo",
    "ManifestDefinitionError",
    "TrainingMining",
    "TrainingUse",
    "edit_definition",
    "template_path",
]

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
PROVENANCE_ASSERTION = "io.github.provenance-kit.generation"
"""Label of the assertion recording the model and the prompt digest."""

TEMPLATES = Path(__file__).parent / "templates"

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_RESERVED_PREFIXES = ("c2pa.hash", "c2pa.signature", "c2pa.claim", "c2pa.ingredient")


class ManifestDefinitionError(ValueError):
    """The description is incomplete or malformed; the message says which field."""


class DigitalSourceType(str, Enum):
    """IPTC digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/)."""

    TRAINED_ALGORITHMIC_MEDIA = "trainedAlgorithmicMedia"
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = "compositeWithTrainedAlgorithmicMedia"
    ALGORITHMIC_MEDIA = "algorithmicMedia"
    ALGORITHMICALLY_ENHANCED = "algorithmicallyEnhanced"
    COMPOSITE_SYNTHETIC = "compositeSynthetic"
    TRAINED_ALGORITHMIC_DATA = "trainedAlgorithmicData"
    DATA_DRIVEN_MEDIA = "dataDrivenMedia"
    DIGITAL_CREATION = "digitalCreation"
    DIGITAL_CAPTURE = "digitalCapture"
    COMPUTATIONAL_CAPTURE = "computationalCapture"
    COMPOSITE_CAPTURE = "compositeCapture"
    COMPOSITE = "composite"
    MINOR_HUMAN_EDITS = "minorHumanEdits"
    SCREEN_CAPTURE = "screenCapture"
    VIRTUAL_RECORDING = "virtualRecording"
    NEGATIVE_FILM = "negativeFilm"
    POSITIVE_FILM = "positiveFilm"
    PRINT = "print"

    @property
    def uri(self) -> str:
        return IPTC_PREFIX + self.value

    @property
    def is_generative_ai(self) -> bool:
        """True where the IPTC term says a trained model made (part of) the content."""
        return self in (
            DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA,
            DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
            DigitalSourceType.TRAINED_ALGORITHMIC_DATA,
        )

    @classmethod
    def parse(cls, value: str | DigitalSourceType) -> DigitalSourceType:
        """Accept the term (``trainedAlgorithmicMedia``) or its full IPTC URI."""
        if isinstance(value, DigitalSourceType):
            return value
        term = value.removeprefix(IPTC_PREFIX).removeprefix(IPTC_PREFIX.replace("http:", "https:"))
        for member in cls:
            if member.value.lower() == term.lower():
                return member
        choices = ", ".join(m.value for m in cls)
        raise ManifestDefinitionError(f"unknown digital source type {value!r} (choose one of: {choices})")


class TrainingUse(str, Enum):
    ALLOWED = "allowed"
    NOT_ALLOWED = "notAllowed"
    CONSTRAINED = "constrained"


@dataclass(frozen=True)
class TrainingMining:
    """The ``cawg.training-mining`` assertion: may this content train or feed AI?

    The default says no to all four uses, the conservative choice for
    generated content (training on generated output degrades models).
    """

    ai_training: TrainingUse = TrainingUse.NOT_ALLOWED
    ai_generative_training: TrainingUse = TrainingUse.NOT_ALLOWED
    ai_inference: TrainingUse = TrainingUse.NOT_ALLOWED
    data_mining: TrainingUse = TrainingUse.NOT_ALLOWED
    constraint_info: str | None = None

    def assertion(self) -> dict[str, Any]:
        entries: dict[str, Any] = {}
        for key in ("ai_training", "ai_generative_training", "ai_inference", "data_mining"):
            use = TrainingUse(getattr(self, key))
            entry: dict[str, Any] = {"use": use.value}
            if use is TrainingUse.CONSTRAINED:
                if not self.constraint_info:
                    raise ManifestDefinitionError(
                        f"training-mining: {key} is 'constrained' but constraint_info is empty"
                    )
                entry["constraint_info"] = self.constraint_info
            entries[f"cawg.{key}"] = entry
        return {"label": "cawg.training-mining", "data": {"entries": entries}}


@dataclass(frozen=True)
class Action:
    """One C2PA action (``c2pa.edited``, ``c2pa.resized``, ``c2pa.watermarked``...)."""

    action: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    digital_source_type: DigitalSourceType | None = None

    def as_dict(self) -> dict[str, Any]:
        if not _LABEL.match(self.action):
            raise ManifestDefinitionError(f"action name {self.action!r} is not a valid label")
        out: dict[str, Any] = {"action": self.action}
        if self.digital_source_type is not None:
            out["digitalSourceType"] = self.digital_source_type.uri
        if self.description:
            out["description"] = self.description
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


@dataclass(frozen=True)
class EditInfo:
    """What was done to a parent asset to make this one.

    ``actions`` are recorded after ``c2pa.opened`` (the parent is linked to it).
    """

    actions: tuple[Action, ...] = (Action("c2pa.edited"),)
    generator: str = "provenance-kit"
    generator_version: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class GenerationInfo:
    """How a piece of content was generated.

    Only ``generator`` is required. The raw ``prompt`` is never written into
    the manifest unless ``store_prompt`` is True; by default the manifest
    records its SHA-256 digest, which lets the producer prove later which
    prompt was used without disclosing it.
    """

    generator: str
    generator_version: str | None = None
    model: str | None = None
    model_version: str | None = None
    digital_source_type: DigitalSourceType = DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA
    prompt: str | None = None
    store_prompt: bool = False
    training_mining: TrainingMining | None = field(default_factory=TrainingMining)
    custom_assertions: Mapping[str, Any] = field(default_factory=dict)
    extra_actions: tuple[Action, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.generator, str) or not self.generator.strip():
            raise ManifestDefinitionError("generator: a non-empty name is required")
        for name in ("generator_version", "model", "model_version", "prompt"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ManifestDefinitionError(f"{name}: expected text, got {type(value).__name__}")
        object.__setattr__(self, "digital_source_type", DigitalSourceType.parse(self.digital_source_type))
        for label, data in self.custom_assertions.items():
            _check_custom_label(label)
            try:
                json.dumps(data)
            except (TypeError, ValueError):
                raise ManifestDefinitionError(
                    f"custom assertion {label!r}: data must be JSON-serialisable"
                ) from None

    @property
    def prompt_sha256(self) -> str | None:
        if self.prompt is None:
            return None
        return hashlib.sha256(self.prompt.encode("utf-8")).hexdigest()

    def with_actions(self, *actions: Action) -> GenerationInfo:
        """A copy with more actions after ``c2pa.created``."""
        return replace(self, extra_actions=(*self.extra_actions, *actions))

    def manifest_definition(
        self,
        *,
        title: str | None = None,
        parent: str | None = None,
        components: Sequence[str] = (),
        edit_actions: Sequence[Action] = (),
        extra_assertions: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The manifest definition (c2pa-rs ``ManifestDefinition`` JSON) to sign.

        Without ``parent`` the content is new: the first action is
        ``c2pa.created`` with the digital source type and the model as
        ``softwareAgent``. With ``parent`` (the label given to the parent
        ingredient) it is an edit: ``c2pa.opened`` links the parent, then
        ``edit_actions`` (default ``c2pa.edited``) carry the source type, so
        an AI edit of a photograph is described as such. ``components`` are
        ingredient labels recorded with ``c2pa.placed``.
        """
        agent: dict[str, Any] | None = None
        if self.model:
            agent = {"name": self.model}
            if self.model_version:
                agent["version"] = self.model_version
        if parent is None:
            first: list[dict[str, Any]] = [
                _with_agent(Action("c2pa.created", digital_source_type=self.digital_source_type), agent)
            ]
        else:
            edits = tuple(edit_actions) or (Action("c2pa.edited"),)
            first = [_opened(parent)] + [
                _with_agent(
                    replace(a, digital_source_type=a.digital_source_type or self.digital_source_type),
                    agent,
                )
                for a in edits
            ]
        actions = first + [_placed(c) for c in components]
        actions += [a.as_dict() for a in self.extra_actions]
        assertions: list[dict[str, Any]] = [{"label": "c2pa.actions.v2", "data": {"actions": actions}}]
        generation = self._generation_assertion()
        if generation:
            assertions.append({"label": PROVENANCE_ASSERTION, "data": generation})
        if self.training_mining is not None:
            assertions.append(self.training_mining.assertion())
        assertions += [{"label": k, "data": v} for k, v in self.custom_assertions.items()]
        assertions += [dict(a) for a in extra_assertions]
        definition: dict[str, Any] = {
            "claim_generator_info": [_generator_info(self.generator, self.generator_version)],
            "assertions": assertions,
        }
        if title:
            definition["title"] = title
        return definition

    def _generation_assertion(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.model:
            data["model"] = self.model
        if self.model_version:
            data["model_version"] = self.model_version
        if self.prompt is not None:
            data["prompt_sha256"] = self.prompt_sha256
            if self.store_prompt:
                data["prompt"] = self.prompt
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationInfo:
        """Build from a plain mapping (a template, a JSON request), validating every field."""
        known = {
            "generator",
            "generator_version",
            "model",
            "model_version",
            "digital_source_type",
            "prompt",
            "store_prompt",
            "training_mining",
            "custom_assertions",
        }
        unknown = sorted(set(data) - known - {"$comment"})
        if unknown:
            raise ManifestDefinitionError(f"unknown field(s): {', '.join(unknown)}")
        if "generator" not in data:
            raise ManifestDefinitionError("generator: a non-empty name is required")
        tm_raw = data.get("training_mining", {})
        training: TrainingMining | None
        if tm_raw is None:
            training = None
        elif isinstance(tm_raw, Mapping):
            try:
                training = TrainingMining(
                    **{k: (TrainingUse(v) if k != "constraint_info" else v) for k, v in tm_raw.items()}
                )
            except (TypeError, ValueError) as exc:
                raise ManifestDefinitionError(f"training_mining: {exc}") from None
        else:
            raise ManifestDefinitionError("training_mining: expected an object or null")
        custom = data.get("custom_assertions", {})
        if not isinstance(custom, Mapping):
            raise ManifestDefinitionError("custom_assertions: expected an object {label: data}")
        return cls(
            generator=data["generator"],
            generator_version=data.get("generator_version"),
            model=data.get("model"),
            model_version=data.get("model_version"),
            digital_source_type=DigitalSourceType.parse(
                data.get("digital_source_type", DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA)
            ),
            prompt=data.get("prompt"),
            store_prompt=_flag(data, "store_prompt"),
            training_mining=training,
            custom_assertions=dict(custom),
        )

    @classmethod
    def from_template(cls, path: str | Path, **overrides: Any) -> GenerationInfo:
        """Load a JSON template (see ``manifests/templates/``), then apply ``overrides``."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestDefinitionError(f"{p}: template not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestDefinitionError(f"{p}: not a valid JSON template ({exc})") from None
        if not isinstance(data, dict):
            raise ManifestDefinitionError(f"{p}: a template is a JSON object")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)


def edit_definition(
    edit: EditInfo,
    parent: str,
    *,
    components: Sequence[str] = (),
    extra_assertions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Manifest definition for a non-generative edit of ``parent`` (an ingredient label)."""
    actions = [_opened(parent), *(a.as_dict() for a in edit.actions)]
    actions += [_placed(c) for c in components]
    definition: dict[str, Any] = {
        "claim_generator_info": [_generator_info(edit.generator, edit.generator_version)],
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            *(dict(a) for a in extra_assertions),
        ],
    }
    if edit.title:
        definition["title"] = edit.title
    return definition


def _opened(label: str) -> dict[str, Any]:
    return {"action": "c2pa.opened", "parameters": {"ingredientIds": [label]}}


def _placed(label: str) -> dict[str, Any]:
    return {"action": "c2pa.placed", "parameters": {"ingredientIds": [label]}}


def _with_agent(action: Action, agent: dict[str, Any] | None) -> dict[str, Any]:
    out = action.as_dict()
    if agent is not None:
        out["softwareAgent"] = agent
    return out


def template_path(name: str) -> Path:
    """Path of a bundled template (``generated-image``, ``composite``...)."""
    path = TEMPLATES / f"{name.removesuffix('.json')}.json"
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in TEMPLATES.glob("*.json")))
        raise ManifestDefinitionError(f"no template named {name!r} (bundled: {names})")
    return path


def _flag(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ManifestDefinitionError(f"{name}: expected true or false, got {value!r}")
    return value


def _generator_info(name: str, version: str | None) -> dict[str, str]:
    info = {"name": name}
    if version:
        info["version"] = version
    return info


def _check_custom_label(label: str) -> None:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ManifestDefinitionError(
            f"custom assertion label {label!r}: use a reverse-domain name like 'com.example.info'"
        )
    if label.startswith(_RESERVED_PREFIXES) or label in ("c2pa.actions", "c2pa.actions.v2"):
        raise ManifestDefinitionError(
            f"custom assertion label {label!r} is reserved by C2PA; use your own namespace"
        )
