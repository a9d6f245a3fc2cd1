"""`python -m cube_extract ARGS`: runs the cube-extract binary with ARGS, as its own process."""

from __future__ import annotations

import os
import subprocess
import sys

from cube_extract import BinaryNotFound, find_bin


def main() -> int:
    try:
        binary = find_bin()
    except BinaryNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 127
    args = [binary, *sys.argv[1:]]
    if os.name == "posix":
        os.execv(binary, args)  # the binary's exit status and signals are the command's
    return subprocess.call(args)


if __name__ == "__main__":
    sys.exit(main())
