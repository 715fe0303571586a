"""Provenance for AI-generated media: sign, watermark, verify, recover.

The three-line version, inside a generation pipeline::

    >>> import provenance, tempfile, os
    >>> from PIL import Image
    >>> home = tempfile.mkdtemp()              # omit the folders to use the defaults
    >>> _ = provenance.create_development_identity(os.path.join(home, "identity"))
    >>> identity = provenance.load_identity_dir(os.path.join(home, "identity"))
    >>> image = Image.effect_mandelbrot((640, 480), (-2, -1.2, 1, 1.2), 100).convert("RGB")
    >>> with provenance.open_store(os.path.join(home, "manifests.db")) as store:
    ...     stamped = provenance.stamp(image, identity, provenance.GenerationInfo(
    ...         generator="my-app", model="my-model"), store=store)
    ...     result = provenance.verify_bytes(stamped.data, store=store)
    >>> result.state.value, result.watermark.matches_manifest
    ('valid', True)

Modules, named for what users do: :mod:`provenance.sign`,
:mod:`provenance.verify`, :mod:`provenance.stamp`, :mod:`provenance.batch`,
:mod:`provenance.keys`, :mod:`provenance.trust`, :mod:`provenance.store`,
:mod:`provenance.watermarks`. Every error derives from
:class:`provenance.errors.ProvenanceError`.
"""

from __future__ import annotations

from manifests import Action, DigitalSourceType, EditInfo, TrainingMining, TrainingUse
from provenance.batch import BatchReport, stamp_tree
from provenance.errors import ExitCode, ProvenanceError
from provenance.generation import GenerationInfo
from provenance.keys import (
    Identity,
    SigningAlgorithm,
    create_development_identity,
    load_identity,
    load_identity_dir,
)
from provenance.sign import SignedAsset, sign_bytes, sign_file, sign_image
from provenance.stamp import StampResult, stamp
from provenance.store import ManifestStore, SQLiteManifestStore, StoreEntry, open_store
from provenance.trust import TrustPolicy
from provenance.verify import State, VerificationResult, verify_bytes, verify_file

__all__ = [
    "Action",
    "BatchReport",
    "DigitalSourceType",
    "EditInfo",
    "ExitCode",
    "GenerationInfo",
    "Identity",
    "ManifestStore",
    "ProvenanceError",
    "SQLiteManifestStore",
    "SignedAsset",
    "SigningAlgorithm",
    "StampResult",
    "State",
    "StoreEntry",
    "TrainingMining",
    "TrainingUse",
    "TrustPolicy",
    "VerificationResult",
    "create_development_identity",
    "load_identity",
    "load_identity_dir",
    "open_store",
    "sign_bytes",
    "sign_file",
    "sign_image",
    "stamp",
    "stamp_tree",
    "verify_bytes",
    "verify_file",
]
