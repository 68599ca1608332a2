"""The project's exceptions. Every error a user can cause derives from InkloopError and carries a readable message."""

from __future__ import annotations


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


class NotFoundError(InkloopError):
    """A referenced row (request id, model version, ...) does not exist."""


class ConflictError(InkloopError):
    """The operation would break an invariant (a duplicate request id, a second champion, ...)."""
