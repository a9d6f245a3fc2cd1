"""cube-extract: copies Headshed Cube into Parquet or Delta Lake tables.

The wheel carries the `cube-extract` binary (installed beside the interpreter's scripts); this package
finds it for orchestrators and scripts, and `python -m cube_extract` runs it.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["find_bin", "BinaryNotFound"]

_NAME = "cube-extract" + (sysconfig.get_config_var("EXE") or "")


class BinaryNotFound(FileNotFoundError):
    """No cube-extract binary: not in this wheel's scripts, not at CUBE_EXTRACT_BIN, not on PATH."""


def _scripts_dirs() -> list[Path]:
    """Where pip put the wheel's binary: this interpreter's scripts folder, or the user scheme's."""
    dirs = [Path(sysconfig.get_path("scripts"))]
    user_scheme = {"posix": "posix_user", "nt": "nt_user"}.get(os.name)
    if user_scheme and user_scheme in sysconfig.get_scheme_names():
        dirs.append(Path(sysconfig.get_path("scripts", scheme=user_scheme)))
    # A venv's interpreter may be run by its full path without the venv being activated.
    dirs.append(Path(sys.executable).parent)
    return dirs


def find_bin() -> str:
    """The path of the cube-extract binary: the one this wheel installed, then `$CUBE_EXTRACT_BIN`,
    then the first on PATH. Raises BinaryNotFound, naming where it looked."""
    for folder in _scripts_dirs():
        candidate = folder / _NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    env = os.environ.get("CUBE_EXTRACT_BIN")
    if env:
        if Path(env).is_file() and os.access(env, os.X_OK):
            return env
        raise BinaryNotFound(f"CUBE_EXTRACT_BIN={env} is not an executable file; fix or unset it")
    found = shutil.which(_NAME)
    if found:
        return found
    looked = ", ".join(str(d) for d in _scripts_dirs())
    raise BinaryNotFound(
        f"no {_NAME} binary in {looked}, at CUBE_EXTRACT_BIN, or on PATH; "
        "reinstall the wheel (pip install cube-extract) or set CUBE_EXTRACT_BIN"
    )
