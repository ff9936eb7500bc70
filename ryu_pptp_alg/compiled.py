"""Which of the ALG's modules run compiled, and the fall-back to their Python source.

``scripts/compile.py`` (``make compile``; ``scripts/setup.sh`` runs it) compiles the
modules on the packet-in path with mypyc, in place, into C extensions that sit next to
their sources, and records each source's SHA-256 in ``compiled.json``. The code stays
plain, type-hinted Python: the extensions only make it faster (about a quarter less CPU
per call set-up, ``docs/benchmarks.md``).

Python imports an extension before a source file of the same name, so an extension
whose source has changed since it was built would run old code. When any listed
source differs from the record, when an extension is missing, or when
``RYU_PPTP_ALG_PURE=1``, every listed module loads from its source instead: all or
none, since compiled modules call each other directly. ``BUILD`` says which, and the
app logs it at start-up.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

LOG = logging.getLogger("ryu_pptp_alg.compiled")
PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "compiled.json"
PURE_ENV = "RYU_PPTP_ALG_PURE"
GROUP = "ryu_pptp_alg.native"  # the extension all compiled modules share
# The packet-in path. Not here: pptp (its dataclasses keep ClassVar layouts mypyc does not
# handle), config, alg, app, rest (start-up, REST, or Ryu glue).
MODULES = (
    "ryu_pptp_alg.codec.errors",
    "ryu_pptp_alg.codec.frame",
    "ryu_pptp_alg.codec.gre",
    "ryu_pptp_alg.codec.reassembly",
    "ryu_pptp_alg.callids",
    "ryu_pptp_alg.fence",
    "ryu_pptp_alg.gateway",
    "ryu_pptp_alg.neighbours",
    "ryu_pptp_alg.ofmsg",
    "ryu_pptp_alg.ofwire",
    "ryu_pptp_alg.pairs",
    "ryu_pptp_alg.pipeline",
    "ryu_pptp_alg.pool",
    "ryu_pptp_alg.records",
    "ryu_pptp_alg.rewriter",
    "ryu_pptp_alg.session",
    "ryu_pptp_alg.state",
)

COMPILED = "compiled"
PURE = "pure"  # never compiled here
PURE_BY_REQUEST = "pure (RYU_PPTP_ALG_PURE=1)"
STALE = "pure (compiled modules out of date: run make compile)"


def source_path(module: str) -> Path:
    return PACKAGE_DIR.parent.joinpath(*module.split(".")).with_suffix(".py")


def extension_path(module: str) -> Path | None:
    stem = source_path(module).with_suffix("")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = stem.with_name(stem.name + suffix)
        if path.exists():
            return path
    return None


def fingerprints() -> dict[str, str]:
    return {module: hashlib.sha256(source_path(module).read_bytes()).hexdigest()
            for module in MODULES}


def state(environ: Any = os.environ) -> str:
    """What the listed modules would load as, in this process."""
    if environ.get(PURE_ENV, "") not in ("", "0"):
        return PURE_BY_REQUEST
    extensions = [extension_path(module) for module in MODULES]
    if not MANIFEST.exists() and not any(extensions):
        return PURE
    try:
        recorded = json.loads(MANIFEST.read_text())["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return STALE
    if recorded != fingerprints() or not all(extensions):
        return STALE
    return COMPILED


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules' ``.py`` files ahead of their extensions."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


def _load_sources_instead() -> None:
    if not any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder())


BUILD = state()
if BUILD not in (COMPILED, PURE):
    _load_sources_instead()
    if BUILD == STALE:
        LOG.warning("ryu-pptp-alg: %s; running the Python sources", BUILD)
