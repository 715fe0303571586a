"""How content was made, as the front door takes it: errors are :class:`ProvenanceError`.

    >>> from provenance import GenerationInfo
    >>> GenerationInfo(generator="my-app", model="m-1").model
    'm-1'
    >>> GenerationInfo(generator=" ")
    Traceback (most recent call last):
    ...
    provenance.errors.ManifestDefinitionError: generator: a non-empty name is required
    >>> GenerationInfo.from_dict({"generator": "my-app", "colour": "red"})
    Traceback (most recent call last):
    ...
    provenance.errors.ManifestDefinitionError: unknown field(s): colour

The ``manifests`` package describes manifests and knows nothing of this
library's errors (dependencies point cli -> provenance -> manifests), so its
validation raises its own ``ValueError``. :class:`GenerationInfo` here is the
same class with the same fields, whose validation raises
:class:`provenance.errors.ManifestDefinitionError` instead: a one-line message
and exit code 2, as every error a user can cause. It is what ``provenance``
exports, and anything that takes a :class:`manifests.GenerationInfo` takes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import manifests
from provenance.errors import ManifestDefinitionError

__all__ = ["GenerationInfo", "definition_errors", "template_path"]


@contextlib.contextmanager
def definition_errors() -> Iterator[None]:
    """Re-raise a ``manifests`` validation error as :class:`ManifestDefinitionError`."""
    try:
        yield
    except ManifestDefinitionError:
        raise
    except manifests.ManifestDefinitionError as exc:
        message = (str(exc).strip().splitlines() or ["invalid generation info"])[0]
        raise ManifestDefinitionError(message) from None


class GenerationInfo(manifests.GenerationInfo):
    """:class:`manifests.GenerationInfo` whose validation errors are :class:`ProvenanceError`."""

    def __post_init__(self) -> None:
        with definition_errors():
            super().__post_init__()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationInfo:
        with definition_errors():
            return cast(GenerationInfo, super().from_dict(data))

    @classmethod
    def from_template(cls, path: str | Path, **overrides: Any) -> GenerationInfo:
        with definition_errors():
            return cast(GenerationInfo, super().from_template(path, **overrides))


def template_path(name: str) -> Path:
    """The bundled template called ``name`` (see ``manifests/templates/``)."""
    with definition_errors():
        return manifests.template_path(name)
