"""Builds ``preload.c`` (the LD_PRELOAD shim for the PPTP peers) with gcc at run time.

See ``preload.c`` for the environment variables it reads: ``PPTP_FORCE_CALL_ID``,
``PPTP_FORCE_PORT`` and ``PPTP_SYSLOG_SOCKET``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

from ryu_pptp_alg.testbed.proc import HarnessError, have, run

SOURCE = Path(__file__).with_name("preload.c")
_lock = threading.Lock()
_built: Path | None = None


def build(directory: Path | None = None) -> Path:
    """Compile the shim into ``directory`` (default: one temp dir per process, removed at
    exit, built once) and return the path of ``preload.so``."""
    global _built
    if not have("gcc"):
        raise HarnessError("gcc is not installed: needed to build the LD_PRELOAD shim")
    with _lock:
        if directory is None and _built is not None and _built.exists():
            return _built
        target_dir = directory
        if target_dir is None:
            target_dir = Path(tempfile.mkdtemp(prefix="pptp-preload-"))
            atexit.register(shutil.rmtree, target_dir, True)
        target = target_dir / "preload.so"
        run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(target), str(SOURCE), "-ldl"],
            timeout=60)
        if directory is None:
            _built = target
        return target


def environment(call_id: int | None = None, port: int | None = None,
                syslog_socket: Path | None = None) -> dict[str, str]:
    """Environment for a peer run under the shim (LD_PRELOAD plus the variables set)."""
    env = {"LD_PRELOAD": str(build())}
    if call_id is not None:
        env["PPTP_FORCE_CALL_ID"] = str(call_id)
    if port is not None:
        env["PPTP_FORCE_PORT"] = str(port)
    if syslog_socket is not None:
        env["PPTP_SYSLOG_SOCKET"] = str(syslog_socket)
    return env
