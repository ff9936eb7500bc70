"""A syslog listener on a Unix datagram socket, for peers that log only to syslog.

Two ways to feed it:

- Private socket (the default, what :mod:`pptp_peers` uses): the listener binds a
  socket in a fresh temp dir and the peers run under the LD_PRELOAD shim with
  ``PPTP_SYSLOG_SOCKET`` pointing at it (see ``preload.c``). Nothing global is
  touched, so listeners of tests running one after another, or at once, never
  see each other's lines.
- ``SyslogListener(Path("/dev/log"))``: binds /dev/log itself for programs run
  without the shim. Only if /dev/log is absent or a stale socket (no one answers);
  a live /dev/log belongs to someone else and raises :class:`HarnessError`. The
  socket is removed on :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ryu_pptp_alg.testbed.proc import HarnessError, wait_for

# <PRI>Mmm dd hh:mm:ss program[pid]: message   (pid and timestamp optional)
LINE_RE = re.compile(
    r"^<(?P<pri>\d{1,3})>(?:(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) )?"
    r"(?P<program>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<message>.*)$", re.S)


@dataclass(frozen=True)
class LogLine:
    time: float  # when received
    priority: int
    program: str
    pid: int | None
    message: str

    def __str__(self) -> str:
        pid = f"[{self.pid}]" if self.pid is not None else ""
        return f"{self.program}{pid}: {self.message}"


def parse(datagram: bytes, received: float | None = None) -> LogLine:
    text = datagram.decode(errors="replace").rstrip("\n\x00")
    match = LINE_RE.match(text)
    now = time.time() if received is None else received
    if not match:
        return LogLine(now, 13, "?", None, text)
    pid = match["pid"]
    return LogLine(now, int(match["pri"]), match["program"], int(pid) if pid else None,
                   match["message"])


class SyslogListener:
    """Collects syslog datagrams in memory (and appends them to ``log_file`` if given)."""

    def __init__(self, path: Path | None = None, log_file: Path | None = None) -> None:
        self._tmpdir: Path | None = None
        self.path = path
        self.log_file = log_file
        self.lines: list[LogLine] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> SyslogListener:
        if self.path is None:
            # Short path: sun_path is limited to 108 bytes.
            self._tmpdir = Path(tempfile.mkdtemp(prefix="pptplog-"))
            self.path = self._tmpdir / "log.sock"
        elif self.path.exists() or self.path.is_symlink():
            self._remove_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o666)
        sock.settimeout(0.2)
        self._sock = sock
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"syslog {self.path}",
                                        daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _remove_stale(path: Path) -> None:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise HarnessError(f"{path} exists and is not a socket; not touching it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink()  # stale: nobody listens
            return
        finally:
            probe.close()
        raise HarnessError(f"{path} is a live syslog socket owned by someone else")

    def _loop(self) -> None:
        assert self._sock is not None
        while not self._stopping:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            line = parse(data)
            with self._lock:
                self.lines.append(line)
            if self.log_file is not None:
                with open(self.log_file, "a") as out:
                    out.write(f"{line.time:.3f} {line}\n")

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            if self.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self.path = None

    def records(self, *programs: str, contains: str | None = None) -> list[LogLine]:
        """Lines so far, optionally only of ``programs`` and containing ``contains``."""
        with self._lock:
            lines = list(self.lines)
        return [line for line in lines
                if (not programs or line.program in programs)
                and (contains is None or contains in line.message)]

    def messages(self, *programs: str) -> list[str]:
        return [str(line) for line in self.records(*programs)]

    def wait_for(self, text: str, *programs: str, timeout: float = 10) -> LogLine:
        """The first line (of ``programs``) containing ``text``; HarnessError on timeout."""
        def found() -> LogLine | None:
            hits = self.records(*programs, contains=text)
            return hits[0] if hits else None
        return wait_for(found, timeout, f"syslog line {text!r}")

    def __enter__(self) -> SyslogListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
