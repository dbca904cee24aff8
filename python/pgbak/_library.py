"""Finds and loads ``libpgbak.so`` and declares its functions."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64)


def _path() -> str:
    explicit = os.environ.get("PGBAK_LIBRARY")
    if explicit:
        return explicit
    bundled = Path(__file__).with_name("libpgbak.so")
    if bundled.is_file():
        return str(bundled)
    found = ctypes.util.find_library("pgbak")
    if found:
        return found
    raise ImportError(
        "pgbak: libpgbak.so not found: install the package with pip (which bundles it) "
        "or set PGBAK_LIBRARY to its path"
    )


def load() -> ctypes.CDLL:
    lib = ctypes.CDLL(_path())
    c_char_pp = ctypes.POINTER(ctypes.c_char_p)
    handle = ctypes.c_void_p
    out_str = ctypes.POINTER(ctypes.c_void_p)
    sigs = {
        "pgbak_version": ([], ctypes.c_char_p),
        "pgbak_last_error": ([], ctypes.c_char_p),
        "pgbak_string_free": ([ctypes.c_void_p], None),
        "pgbak_open": ([ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(handle)], ctypes.c_int),
        "pgbak_close": ([handle], None),
        "pgbak_set_progress": ([handle, PROGRESS, ctypes.c_void_p], ctypes.c_int),
        "pgbak_cancel": ([handle], ctypes.c_int),
        "pgbak_backup": ([handle, ctypes.c_char_p, out_str], ctypes.c_int),
        "pgbak_recover": (
            [handle, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, out_str],
            ctypes.c_int,
        ),
        "pgbak_list_backups": ([handle, out_str], ctypes.c_int),
        "pgbak_show_backup": ([handle, ctypes.c_char_p, out_str], ctypes.c_int),
        "pgbak_delete_backup": ([handle, ctypes.c_char_p, out_str], ctypes.c_int),
        "pgbak_check": ([handle, out_str], ctypes.c_int),
        "pgbak_enforce_retention": ([handle, out_str], ctypes.c_int),
        "pgbak_rebuild_xlogdb": ([handle, out_str], ctypes.c_int),
        "pgbak_verify_backup": ([handle, ctypes.c_char_p, out_str], ctypes.c_int),
        "pgbak_keep": ([handle, ctypes.c_char_p, ctypes.c_char_p, out_str], ctypes.c_int),
        "pgbak_release_keep": ([handle, ctypes.c_char_p, out_str], ctypes.c_int),
        "pgbak_archive_wal": ([handle, ctypes.c_char_p, out_str], ctypes.c_int),
        "pgbak_get_wal": ([handle, ctypes.c_char_p, ctypes.c_char_p], ctypes.c_int),
    }
    del c_char_pp
    for name, (args, result) in sigs.items():
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = result
    return lib
