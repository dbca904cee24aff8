"""The exceptions of pgbak, one per status code of the C ABI."""

from __future__ import annotations


class PgbakError(Exception):
    """A pgbak call failed. ``status`` is the C ABI's code, ``report`` what the call reported
    before failing (a check or verify report), if anything."""

    status = 1

    def __init__(self, message: str, report: object = None):
        super().__init__(message)
        self.message = message
        self.report = report


class UsageError(PgbakError, ValueError):
    """A bad argument, option or name."""

    status = 2


class StorageUnreachableError(PgbakError, ConnectionError):
    """The object store could not be reached."""

    status = 3


class StorageDeniedError(PgbakError, PermissionError):
    """The object store refused access, or its bucket or container does not exist."""

    status = 4


class ConfigurationError(PgbakError):
    """The configuration is missing or invalid."""

    status = 5


class NotFoundError(PgbakError, LookupError):
    """No such backup, WAL file or server."""

    status = 6


class BusyError(PgbakError):
    """Another pgbak process holds a lock this call needs; try again later."""

    status = 7


class InUseError(PgbakError):
    """The backup is being taken, deleted, restored or kept."""

    status = 8


class RefusedError(PgbakError):
    """Refused by a rule: retention, keep, minimum_redundancy, a hook, an incremental chain."""

    status = 9


class CorruptError(PgbakError):
    """Stored data failed a check."""

    status = 10


class PostgresConnectionError(PgbakError, ConnectionError):
    """PostgreSQL could not be reached, or a query or the replication protocol failed."""

    status = 11


class PgbakIOError(PgbakError, OSError):
    """A local file operation failed."""

    status = 12


class CancelledError(PgbakError):
    """The call was cancelled."""

    status = 13


class InternalError(PgbakError):
    """A bug in pgbak."""

    status = 14


class PgbakTimeoutError(PgbakError, TimeoutError):
    """Something did not happen in the time allowed."""

    status = 15


class NoSpaceError(PgbakError, OSError):
    """Not enough free space where the data was to go."""

    status = 16


BY_STATUS = {
    cls.status: cls
    for cls in (
        PgbakError,
        UsageError,
        StorageUnreachableError,
        StorageDeniedError,
        ConfigurationError,
        NotFoundError,
        BusyError,
        InUseError,
        RefusedError,
        CorruptError,
        PostgresConnectionError,
        PgbakIOError,
        CancelledError,
        InternalError,
        PgbakTimeoutError,
        NoSpaceError,
    )
}
