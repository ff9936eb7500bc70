#!/usr/bin/env python3
"""Compile the ALG's packet-in path with mypyc, in place (see ryu_pptp_alg/compiled.py).

    .venv/bin/python scripts/compile.py            # build if out of date
    .venv/bin/python scripts/compile.py --force    # build anyway
    .venv/bin/python scripts/compile.py --clean    # remove the extensions: pure Python

Needs mypy (the ``compile`` extra), a C compiler and the Python headers (python3-dev).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ryu_pptp_alg import compiled  # noqa: E402

BUILD_DIR = ROOT / "build" / "mypyc"


def clean() -> None:
    for module in compiled.MODULES:
        path = compiled.extension_path(module)
        if path is not None:
            path.unlink()
    shared = compiled.GROUP.rpartition(".")[2] + "__mypyc.*"  # the group's own extension
    for path in compiled.PACKAGE_DIR.glob(shared):
        path.unlink()
    compiled.MANIFEST.unlink(missing_ok=True)
    shutil.rmtree(BUILD_DIR, ignore_errors=True)


def build() -> None:
    import mypy.version
    from mypyc.build import mypycify
    from setuptools import setup

    clean()
    sources = [str(compiled.source_path(m).relative_to(ROOT)) for m in compiled.MODULES]
    extensions = mypycify(["--ignore-missing-imports", *sources], group_name=compiled.GROUP,
                          target_dir=str(BUILD_DIR))
    setup(name="ryu-pptp-alg-native", ext_modules=extensions,
          script_args=["-q", "build_ext", "--inplace", "--build-temp", str(BUILD_DIR / "temp"),
                       "--parallel", "2"])
    compiled.MANIFEST.write_text(json.dumps(
        {"mypy": mypy.version.__version__, "modules": compiled.fingerprints()}, indent=1)
        + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="build even if up to date")
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    args = parser.parse_args(argv)
    if args.clean:
        clean()
        print("compile: removed the compiled modules; the ALG runs its Python sources")
        return 0
    current = compiled.state({})
    if current == compiled.COMPILED and not args.force:
        print("compile: up to date")
        return 0
    started = time.monotonic()
    os.chdir(ROOT)  # mypycify takes paths relative to here
    build()
    after = compiled.state({})
    if after != compiled.COMPILED:
        print(f"compile: built, but the modules would load as: {after}", file=sys.stderr)
        return 1
    print(f"compile: {len(compiled.MODULES)} modules compiled with mypyc in "
          f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
