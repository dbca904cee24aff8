"""pgbak, the backup and recovery manager for PostgreSQL, from Python.

A thin layer over the C ABI of ``libpgbak.so`` (ctypes). Reports are dicts, as the CLI's
``-f json`` prints them; failures are exceptions of :mod:`pgbak.errors`::

    import pgbak

    with pgbak.Server("main", config="/etc/pgbak.conf") as server:
        backup = server.backup(wait=True)
        server.recover("latest", "/var/lib/restore", target_time="2026-12-05 10:00:00+00")

The library is the one bundled by ``pip install``, or the file ``$PGBAK_LIBRARY`` names.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from typing import Any, Callable, Dict, List, Optional, Union

from . import _library
from .errors import (
    BY_STATUS,
    BusyError,
    CancelledError,
    ConfigurationError,
    CorruptError,
    InternalError,
    InUseError,
    NoSpaceError,
    NotFoundError,
    PgbakError,
    PgbakIOError,
    PgbakTimeoutError,
    PostgresConnectionError,
    RefusedError,
    StorageDeniedError,
    StorageUnreachableError,
    UsageError,
)

__all__ = [
    "Server",
    "version",
    "Progress",
    "PgbakError",
    "UsageError",
    "StorageUnreachableError",
    "StorageDeniedError",
    "ConfigurationError",
    "NotFoundError",
    "BusyError",
    "InUseError",
    "RefusedError",
    "CorruptError",
    "PostgresConnectionError",
    "PgbakIOError",
    "CancelledError",
    "InternalError",
    "PgbakTimeoutError",
    "NoSpaceError",
]

_lib = _library.load()

PathLike = Union[str, "os.PathLike[str]"]
Report = Dict[str, Any]
#: Called with the bytes done and the expected total (``None`` when unknown).
Progress = Callable[[int, Optional[int]], None]


def version() -> str:
    """The version of the loaded library."""
    return _lib.pgbak_version().decode()


def _text(value: Optional[PathLike]) -> Optional[bytes]:
    return None if value is None else os.fsencode(value)


def _check(status: int, report: Any = None) -> None:
    if status != 0:
        message = (_lib.pgbak_last_error() or b"").decode(errors="replace")
        raise BY_STATUS.get(status, PgbakError)(message, report)


def _take(pointer: ctypes.c_void_p) -> Any:
    """The report a call wrote, freed."""
    if not pointer.value:
        return None
    try:
        return json.loads(ctypes.string_at(pointer.value).decode())
    finally:
        _lib.pgbak_string_free(pointer)


class Server:
    """A server of a pgbak configuration. Use it as a context manager, or call :meth:`close`.

    A Server may be shared between threads: its calls run one at a time; :meth:`cancel` may be
    called from another thread while one runs.
    """

    def __init__(self, name: str, config: Optional[PathLike] = None):
        handle = ctypes.c_void_p()
        _check(_lib.pgbak_open(_text(config), name.encode(), ctypes.byref(handle)))
        self._handle: Optional[ctypes.c_void_p] = handle
        self.name = name
        self._lock = threading.Lock()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Releases the handle; the Server cannot be used afterwards."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            _lib.pgbak_close(handle)

    def _h(self) -> ctypes.c_void_p:
        if not self._handle:
            raise UsageError(f"server '{self.name}' is closed")
        return self._handle

    def _call(self, fn: Any, *args: Any, reports: bool = True) -> Any:
        out = ctypes.c_void_p()
        if reports:
            status = fn(self._h(), *args, ctypes.byref(out))
        else:
            status = fn(self._h(), *args)
        report = _take(out)
        _check(status, report)
        return report

    @staticmethod
    def _options(options: Dict[str, Any]) -> bytes:
        return json.dumps({k: v for k, v in options.items() if v is not None}).encode()

    def backup(
        self,
        *,
        wait: bool = True,
        wait_timeout: Optional[int] = None,
        immediate_checkpoint: Optional[bool] = None,
        jobs: Optional[int] = None,
        incremental: Optional[str] = None,
        progress: Optional[Progress] = None,
    ) -> Report:
        """Takes a backup and returns its record. With ``wait`` it returns once the WAL the
        backup needs is archived (status ``DONE``). ``progress`` is called as the copy goes;
        if it raises, the backup is cancelled and the exception re-raised."""
        options = self._options(
            {
                "wait": wait,
                "wait_timeout": wait_timeout,
                "immediate_checkpoint": immediate_checkpoint,
                "jobs": jobs,
                "incremental": incremental,
            }
        )
        with self._lock:
            return self._with_progress(progress, _lib.pgbak_backup, options)

    def _with_progress(self, progress: Optional[Progress], fn: Any, *args: Any) -> Any:
        """Runs a call with ``progress`` as its callback; a callback that raises cancels the
        call, and its exception is raised instead of the cancellation."""
        raised: List[BaseException] = []

        def on_progress(_user: Any, done: int, total: int) -> None:
            if raised:
                return
            try:
                progress(done, None if total < 0 else total)  # type: ignore[misc]
            except BaseException as e:  # noqa: BLE001 - re-raised below
                raised.append(e)
                _lib.pgbak_cancel(self._h())

        callback = _library.PROGRESS(on_progress) if progress else _library.PROGRESS()
        _check(_lib.pgbak_set_progress(self._h(), callback, None))
        try:
            result = self._call(fn, *args)
        except CancelledError:
            if raised:
                raise raised[0]
            raise
        finally:
            _lib.pgbak_set_progress(self._h(), _library.PROGRESS(), None)
        # The call ended before it saw the cancellation: the callback's error still stands.
        if raised:
            raise raised[0]
        return result

    def recover(
        self,
        backup_id: str,
        destination: PathLike,
        *,
        target_time: Optional[str] = None,
        target_xid: Optional[str] = None,
        target_lsn: Optional[str] = None,
        target_name: Optional[str] = None,
        target_immediate: bool = False,
        target_tli: Optional[str] = None,
        exclusive: bool = False,
        target_action: Optional[str] = None,
        tablespaces: Optional[Dict[str, str]] = None,
        standby_mode: bool = False,
        get_wal: Optional[bool] = None,
        force: bool = False,
        remote_ssh_command: Optional[str] = None,
        jobs: Optional[int] = None,
        bwlimit: Optional[int] = None,
        delta_restore: Optional[bool] = None,
        pgbak_program: Optional[PathLike] = None,
        progress: Optional[Progress] = None,
    ) -> Report:
        """Restores ``backup_id`` (an id, ``latest``, ``oldest``...) into ``destination`` and
        writes the recovery settings for the target; returns what was restored. ``progress`` is
        called with the bytes restored; if it raises, the restore stops (the destination is left
        incomplete, without ``backup_label``) and the exception is re-raised."""
        options = self._options(
            {
                "target_time": target_time,
                "target_xid": target_xid,
                "target_lsn": target_lsn,
                "target_name": target_name,
                "target_immediate": target_immediate,
                "target_tli": target_tli,
                "exclusive": exclusive,
                "target_action": target_action,
                "tablespaces": tablespaces,
                "standby_mode": standby_mode,
                "get_wal": get_wal,
                "force": force,
                "remote_ssh_command": remote_ssh_command,
                "jobs": jobs,
                "bwlimit": bwlimit,
                "delta_restore": delta_restore,
                "pgbak_program": None if pgbak_program is None else os.fspath(pgbak_program),
            }
        )
        dest = os.fsencode(os.path.abspath(destination))
        with self._lock:
            return self._with_progress(
                progress, _lib.pgbak_recover, backup_id.encode(), dest, options
            )

    def list_backups(self) -> List[Report]:
        """Every backup, newest first."""
        with self._lock:
            return self._call(_lib.pgbak_list_backups)

    def show_backup(self, backup_id: str) -> Report:
        """One backup, with its retention and keep status."""
        with self._lock:
            return self._call(_lib.pgbak_show_backup, backup_id.encode())

    def delete_backup(self, backup_id: str) -> Report:
        """Deletes a backup and the WAL only it needed."""
        with self._lock:
            return self._call(_lib.pgbak_delete_backup, backup_id.encode())

    def keep(self, backup_id: str, target: str = "full") -> Report:
        """Keeps a DONE backup whatever the retention policy says (``full`` or
        ``standalone``); returns its keep status."""
        with self._lock:
            return self._call(_lib.pgbak_keep, backup_id.encode(), target.encode())

    def release_keep(self, backup_id: str) -> Report:
        """Releases the keep: the backup follows the retention policy again."""
        with self._lock:
            return self._call(_lib.pgbak_release_keep, backup_id.encode())

    def enforce_retention(self) -> Report:
        """Applies the retention policy as ``pgbak cron`` does: deletes the OBSOLETE backups
        (and finishes interrupted deletes); returns what was deleted and what waits."""
        with self._lock:
            return self._call(_lib.pgbak_enforce_retention)

    def rebuild_xlogdb(self) -> Report:
        """Recreates the WAL index from the files of the archive."""
        with self._lock:
            return self._call(_lib.pgbak_rebuild_xlogdb)

    def check(self) -> Report:
        """Runs the server's checks; raises :class:`PgbakError` (with the report) if one fails."""
        with self._lock:
            return self._call(_lib.pgbak_check)

    def verify_backup(self, backup_id: str) -> Report:
        """Reads a backup back against its manifest; raises :class:`CorruptError` (with the
        report) if a file differs."""
        with self._lock:
            return self._call(_lib.pgbak_verify_backup, backup_id.encode())

    def archive_wal(self, path: PathLike) -> Report:
        """Archives one WAL file, as ``archive_command`` does."""
        with self._lock:
            return self._call(_lib.pgbak_archive_wal, os.fsencode(path))

    def get_wal(self, wal_name: str, destination: PathLike) -> None:
        """Fetches one WAL file from the archive into ``destination``."""
        with self._lock:
            self._call(
                _lib.pgbak_get_wal, wal_name.encode(), os.fsencode(destination), reports=False
            )

    def cancel(self) -> None:
        """Asks the call running on this Server (from another thread) to stop."""
        _check(_lib.pgbak_cancel(self._h()))
