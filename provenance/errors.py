"""One error hierarchy for everything the library refuses to do.

Every error a user can meet derives from :class:`ProvenanceError`, knows the
one-line message to show, and the process exit code the CLI uses for it::

    >>> from provenance.errors import InputNotFoundError
    >>> err = InputNotFoundError("photo.jpg: no such file")
    >>> int(err.exit_code), str(err)
    (4, 'photo.jpg: no such file')

The CLI catches only ``ProvenanceError``: anything else is a bug and is reported
as an internal error (exit 70).
"""

from __future__ import annotations

from enum import IntEnum

import manifests


class ExitCode(IntEnum):
    """Process exit codes, stable and documented in the README."""

    OK = 0
    """Success; for ``verify``: credentials present and intact (trusted or valid)."""
    INVALID_CREDENTIALS = 1
    """``verify``: credentials present but invalid (tampered, bad signature, ...)."""
    USAGE = 2
    """Bad arguments or options (click's convention), or an invalid manifest description."""
    NO_CREDENTIALS = 3
    """``verify``: the file carries no Content Credentials and none could be recovered."""
    FILE_ERROR = 4
    """An input could not be read or decoded, or an output could not be written."""
    IDENTITY_ERROR = 5
    """Signing identity problem: key, certificate, passphrase."""
    PARTIAL_FAILURE = 6
    """A batch finished but some files failed."""
    SIGNING_ERROR = 7
    """The C2PA library refused to sign."""
    STORE_ERROR = 8
    """The manifest store could not be opened, read or written."""
    INTERNAL = 70
    """A bug: please report it with the output of ``-v``."""


class ProvenanceError(Exception):
    """Base class: a failure with a message meant for the user."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ProvenanceError):
    """An argument has a value the library cannot use."""

    exit_code = ExitCode.USAGE


class ManifestDefinitionError(UsageError, manifests.ManifestDefinitionError):
    """The description of how content was generated is incomplete or malformed.

    Also a :class:`manifests.ManifestDefinitionError` (a ``ValueError``), so code
    written against the ``manifests`` package catches it too.
    """


class FileError(ProvenanceError):
    """Reading an input or writing an output failed."""

    exit_code = ExitCode.FILE_ERROR


class InputNotFoundError(FileError):
    """The input path does not exist."""


class UnreadableInputError(FileError):
    """The input exists but cannot be read (a directory, no permission, ...)."""


class UnsupportedFormatError(FileError):
    """The file's real format is not one the C2PA library can handle."""


class CorruptInputError(FileError):
    """The file's content is truncated or malformed."""


class ImageTooLargeError(FileError):
    """The image is larger than the configured limit (decompression bomb guard)."""


class OutputError(FileError):
    """The output could not be written, or writing it would destroy the input."""


class IdentityError(ProvenanceError):
    """A signing identity cannot be created, loaded or used."""

    exit_code = ExitCode.IDENTITY_ERROR


class IdentityNotFoundError(IdentityError):
    """No identity at the expected place."""


class WrongPassphraseError(IdentityError):
    """The private key is encrypted and the passphrase does not open it."""


class KeyMismatchError(IdentityError):
    """The private key does not belong to the signing certificate."""


class CertificateExpiredError(IdentityError):
    """The signing certificate is outside its validity period."""


class SigningError(ProvenanceError):
    """The C2PA library could not produce a signed asset."""

    exit_code = ExitCode.SIGNING_ERROR


class StoreError(ProvenanceError):
    """The manifest store failed."""

    exit_code = ExitCode.STORE_ERROR


class WatermarkFailure(FileError):
    """The image cannot carry a watermark (for example, it is too small)."""


class InvalidChoiceError(UsageError, ValueError):
    """A value is not one of the names an option accepts (an algorithm, a format...).

    Also a ``ValueError``, so code that caught the enum's own error keeps working.
    """


class AlgorithmMismatchError(IdentityError):
    """The declared signature algorithm is not the one the certificate's key signs with."""


class CertificateProfileError(IdentityError):
    """A certificate chain does not meet the C2PA certificate profile (usage, order, algorithms)."""


class EntryNotFoundError(StoreError):
    """The manifest store has no entry for the identifier or label asked for."""
