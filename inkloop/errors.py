"""The project's exceptions. Every error a user can cause derives from InkloopError and carries a readable message."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line errors. A database driver's error wrapped by
    SQLAlchemy says what went wrong in its first line (`exc.orig`); the rest is SQL and a link."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class InkloopError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class SettingsError(InkloopError):
    """A setting (INKLOOP_* variable) is malformed or unknown."""


class StoreError(InkloopError):
    """Base class for image-store failures."""


class InvalidKeyError(StoreError):
    """A store key is not a lowercase hex sha256 digest (and so could name a path outside the store)."""


class ObjectNotFoundError(StoreError):
    """No object is stored under this key."""


class CorruptObjectError(StoreError):
    """The stored bytes no longer hash to their key."""


class DatabaseError(InkloopError):
    """The database cannot be reached or is not at the expected schema revision."""


class SchemaNotReadyError(DatabaseError):
    """The database has no inkloop schema, or an older one than this code needs."""


class InvalidTextError(InkloopError):
    """A text from outside holds what inkloop never stores (a NUL or another control character, a lone surrogate),
    or is longer than its field or column allows; the message names the field (inkloop/untrusted.py)."""


class NotFoundError(InkloopError):
    """A referenced row (request id, model version, ...) does not exist."""


class ConflictError(InkloopError):
    """The operation would break an invariant (a duplicate request id, a second champion, ...)."""


class TransientError(InkloopError):
    """A service did not answer (a lost connection, a timeout): the operation may succeed if tried again."""


class LabelStudioError(InkloopError):
    """Label Studio refused a request, answered something inkloop cannot use, or could not be started."""


class LabelStudioUnavailableError(LabelStudioError, TransientError):
    """Label Studio did not answer (not running, a lost connection, a timeout): retrying may succeed."""


class LabelStudioAuthError(LabelStudioError):
    """Label Studio refused the API token (INKLOOP_LABEL_STUDIO_TOKEN)."""


class MalformedAnnotationError(LabelStudioError):
    """A task or annotation from Label Studio lacks a field inkloop needs, or holds a value of the wrong kind."""


class InvalidTaskError(LabelStudioError):
    """A task inkloop was asked to send to Label Studio is malformed (a box outside the image, a score outside 0..1)."""


class DatasetError(InkloopError):
    """A dataset version cannot be built or exported as asked."""


class EmptyDatasetError(DatasetError):
    """Nothing to build a dataset version from."""


class LeakageError(DatasetError):
    """A dataset build would put the same page (or a copy of it) on two sides of a split; it is refused."""


class BusyError(InkloopError):
    """Another process holds the lock this work needs (two retrains never run at once)."""
