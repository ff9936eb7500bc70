"""Subprocess helpers shared by the harness."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class HarnessError(RuntimeError):
    pass


def run(cmd: Sequence[str], check: bool = True, timeout: float = 30,
        input_: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                                input=input_)
    except FileNotFoundError as err:
        raise HarnessError(f"{cmd[0]}: not installed") from err
    if check and result.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def have(command: str) -> bool:
    return shutil.which(command) is not None


def wait_for(condition: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.1) -> T:
    """Poll ``condition`` until it returns something truthy; HarnessError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
         timeout: float = 10) -> tuple[int, bool]:
    """Send ``sig`` to our child ``process`` (if it still runs) and wait for it to exit;
    past ``timeout`` it is SIGKILLed. Its exit status, and whether it had to be killed."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout), False
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10), True
