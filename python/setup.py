"""Bundles the shared library into the package when it is built.

The library comes from ``$PGBAK_LIBRARY`` when that names a file (an existing build), else it is
built here with ``cargo build --release -p pgbak-ffi`` from the repository this folder is in.
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        library = os.environ.get("PGBAK_LIBRARY")
        if library:
            source = Path(library)
        else:
            root = HERE.parent
            subprocess.run(
                ["cargo", "build", "--release", "--locked", "-p", "pgbak-ffi"],
                cwd=root,
                check=True,
            )
            source = root / "target" / "release" / "libpgbak.so"
        if not source.is_file():
            raise SystemExit(f"pgbak: no shared library at {source}")
        target = Path(self.build_lib) / "pgbak" / "libpgbak.so"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildWithLibrary})
