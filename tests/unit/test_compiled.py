"""The packet-in path runs compiled when its extensions match its sources, else from source."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ryu_pptp_alg import compiled

PROBE = ("import json, ryu_pptp_alg.compiled as c, ryu_pptp_alg.gateway as g, "
         "ryu_pptp_alg.codec.frame as f; "
         "print(json.dumps([c.BUILD, g.__file__, f.__file__, "
         "f.internet_checksum(b'\\x45\\x00\\x00\\x1c')]))")


def probe(root: Path, **env: str) -> list[object]:
    import json
    inherited = {k: v for k, v in os.environ.items() if k != compiled.PURE_ENV}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True,
                            text=True, check=True,
                            env={**inherited, "PYTHONPATH": str(root), **env})
    return json.loads(result.stdout.splitlines()[-1])


def is_extension(path: str) -> bool:
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_every_listed_module_has_a_source() -> None:
    assert all(compiled.source_path(m).is_file() for m in compiled.MODULES)


def test_asking_for_the_python_sources_gets_them() -> None:
    assert compiled.state({compiled.PURE_ENV: "1"}) == compiled.PURE_BY_REQUEST
    build, gateway, frame, checksum = probe(Path.cwd(), **{compiled.PURE_ENV: "1"})
    assert build == compiled.PURE_BY_REQUEST
    assert gateway.endswith("gateway.py") and frame.endswith("frame.py")
    assert checksum == 0xBAE3


@pytest.fixture
def built() -> None:
    if compiled.state({}) != compiled.COMPILED:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the compiled modules: scripts/setup.sh compiles them")
        pytest.skip("not compiled here (make compile)")


@pytest.mark.usefixtures("built")
def test_the_suite_runs_the_modules_it_asked_for() -> None:
    """Compiled when they are built, unless the run asked for the sources (make test
    runs the unit suites both ways)."""
    import ryu_pptp_alg.gateway as gateway
    if os.environ.get(compiled.PURE_ENV, "") not in ("", "0"):
        assert compiled.BUILD == compiled.PURE_BY_REQUEST
        assert (gateway.__file__ or "").endswith("gateway.py")
        return
    assert compiled.BUILD == compiled.COMPILED
    assert is_extension(gateway.__file__ or "")
    build, gateway_file, frame_file, checksum = probe(Path.cwd())
    assert build == compiled.COMPILED and is_extension(gateway_file) \
        and is_extension(frame_file)
    assert checksum == 0xBAE3


@pytest.mark.usefixtures("built")
def test_a_changed_source_is_run_instead_of_its_old_extension(tmp_path: Path) -> None:
    """All or none: a stale extension would run old code, so every module loads from
    source (the compiled ones call each other directly)."""
    shutil.copytree(compiled.PACKAGE_DIR, tmp_path / "ryu_pptp_alg",
                    ignore=shutil.ignore_patterns("__pycache__"))
    source = tmp_path / "ryu_pptp_alg" / "gateway.py"
    source.write_text(source.read_text() + "\n# edited after make compile\n")
    build, gateway, frame, checksum = probe(tmp_path)
    assert build == compiled.STALE
    assert gateway == str(source) and frame.endswith("frame.py")
    assert checksum == 0xBAE3


@pytest.mark.usefixtures("built")
def test_a_missing_extension_means_the_python_sources(tmp_path: Path) -> None:
    shutil.copytree(compiled.PACKAGE_DIR, tmp_path / "ryu_pptp_alg",
                    ignore=shutil.ignore_patterns("__pycache__", "pairs.*.so"))
    build, gateway, _, _ = probe(tmp_path)
    assert build == compiled.STALE and gateway.endswith("gateway.py")
