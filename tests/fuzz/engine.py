"""What every target and both engines share: the byte reader, findings and their classes,
the recorder that keeps one smallest input per class, and the seeded mutator.

A *finding* has a class (``Finding.cls``): a short, stable description of what went
wrong (an exception's type and the ALG line it left from, or the name of a failed
check). Inputs are de-duplicated by class; ``known.py`` maps the classes of defects
that are not fixed yet to their xfail reproducers.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"


@dataclass(frozen=True)
class Finding:
    cls: str  # stable: the de-duplication key
    detail: str = ""


Target = Callable[[bytes], list[Finding]]


class Reader:
    """The fuzzer's bytes as a stream of choices. Reading past the end gives zeros, so
    every input decodes to something, and a mutation changes only the choices it hits."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n).ljust(n, b"\0"), "big")

    def u8(self) -> int:
        return self.uint(1)

    def u16(self) -> int:
        return self.uint(2)

    def u32(self) -> int:
        return self.uint(4)

    def below(self, n: int) -> int:
        return (self.u8() if n <= 256 else self.u16()) % n

    def pick(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def blob(self, limit: int = 255) -> bytes:
        """A length byte, then that many bytes (at most ``limit``)."""
        return self.take(min(self.u8(), limit))

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk


class Writer:
    """Writes choices as ``Reader`` reads them: how the seed corpora are made."""

    def __init__(self) -> None:
        self.out = bytearray()

    def uint(self, n: int, value: int) -> Writer:
        self.out += (value % (1 << 8 * n)).to_bytes(n, "big")
        return self

    def u8(self, value: int) -> Writer:
        return self.uint(1, value)

    def u16(self, value: int) -> Writer:
        return self.uint(2, value)

    def u32(self, value: int) -> Writer:
        return self.uint(4, value)

    def raw(self, data: bytes) -> Writer:
        self.out += data
        return self

    def blob(self, data: bytes) -> Writer:
        assert len(data) < 256
        self.out.append(len(data))
        self.out += data
        return self

    def bytes(self) -> bytes:
        return bytes(self.out)


# --- classes of findings -----------------------------------------------------------------

_NUMBERS = re.compile(r"\b(0x[0-9a-f]+|\d+)\b")


def normalise(text: str) -> str:
    """A message with its numbers taken out: one class for every instance."""
    return _NUMBERS.sub("N", text.strip().splitlines()[0] if text.strip() else "")[:160]


def exception_finding(err: BaseException) -> Finding:
    """Class: the exception's type and where it left the ALG (the innermost frame in
    ``ryu_pptp_alg``; else in the harness, named so)."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "ryu_pptp_alg" in f.filename]
    frame = ours[-1] if ours else (frames[-1] if frames else None)
    # The last frames only: a RecursionError has a thousand.
    detail = "Traceback (most recent call last, at most 40 frames):\n" \
        + "".join(traceback.format_list(frames[-40:])) \
        + "".join(traceback.format_exception_only(err))
    where = "?"
    if frame is not None:
        path = Path(frame.filename)
        try:
            where = f"{path.resolve().relative_to(REPO)}:{frame.lineno}"
        except ValueError:
            where = f"{path.name}:{frame.lineno}"
    if not ours and frame is not None and isinstance(err, AssertionError):
        # A check of the harness (fake switch: indexes differ from their rebuilt form).
        return Finding(f"check {frame.name} failed: {normalise(str(err))}", detail)
    function = f" ({frame.name})" if frame is not None else ""
    # How the recursion went too deep (a repr, a parser) is the mechanism: name it too.
    how = f": {normalise(str(err))}" if isinstance(err, RecursionError) else ""
    return Finding(f"exception {type(err).__name__} at {where}{function}{how}", detail)


def guarded(target: Target, data: bytes) -> list[Finding]:
    """The target's findings, with an escaping exception as one more."""
    try:
        return target(data)
    except Exception as err:
        return [exception_finding(err)]


# --- recording -----------------------------------------------------------------------------

def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:80]


@dataclass
class Recorder:
    """Counts findings by class and keeps the smallest input of each (in ``crashes``)."""

    target: str
    crashes: Path | None = None
    counts: Counter[str] = field(default_factory=Counter)
    smallest: dict[str, bytes] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    runs: int = 0
    started: float = field(default_factory=time.monotonic)
    slowest: tuple[float, bytes] = (0.0, b"")

    def record(self, data: bytes, findings: list[Finding], seconds: float = 0.0) -> None:
        self.runs += 1
        if seconds > self.slowest[0]:
            self.slowest = (seconds, data)
        for finding in {f.cls: f for f in findings}.values():
            self.counts[finding.cls] += 1
            known = self.smallest.get(finding.cls)
            if known is None or len(data) < len(known):
                self.smallest[finding.cls] = data
                self.details[finding.cls] = finding.detail
                self._save(finding, data)

    def _save(self, finding: Finding, data: bytes) -> None:
        if self.crashes is None:
            return
        self.crashes.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(finding.cls.encode()).hexdigest()[:8]
        name = f"{self.target}-{slug(finding.cls)}-{digest}"
        (self.crashes / name).write_bytes(data)
        (self.crashes / f"{name}.txt").write_text(
            f"target: {self.target}\nclass: {finding.cls}\ninput: {len(data)} bytes, "
            f"{data[:64].hex()}{'...' if len(data) > 64 else ''}\n"
            f"reproduce: python -m tests.fuzz {self.target} --replay {self.crashes / name}\n\n"
            f"{finding.detail}\n")

    def summary(self) -> dict[str, object]:
        elapsed = time.monotonic() - self.started
        return {"target": self.target, "runs": self.runs, "seconds": round(elapsed, 1),
                "per_second": round(self.runs / elapsed, 1) if elapsed else 0.0,
                "findings": dict(self.counts.most_common()),
                "slowest_input_seconds": round(self.slowest[0], 3)}


# --- the seeded mutator (no coverage feedback) ------------------------------------------

def corpus(target: str) -> list[bytes]:
    directory = CORPUS / target
    return [p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()] \
        if directory.is_dir() else []


def mutate(rng: random.Random, data: bytes, pool: Sequence[bytes], max_len: int) -> bytes:
    """One to four of libFuzzer's simpler mutations."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(9)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:  # flip a bit
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:  # a byte, perhaps an interesting one
            out[rng.randrange(len(out))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif kind == 2:  # insert random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3 and out:  # delete a range
            del out[at:at + rng.randint(1, 16)]
        elif kind == 4 and out:  # duplicate a range
            start = rng.randrange(len(out))
            out[at:at] = out[start:start + rng.randint(1, 32)]
        elif kind == 5 and pool:  # splice in part of another input
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            out[at:] = other[start:start + rng.randint(1, 256)] + out[at:]
        elif kind == 6:  # truncate
            del out[at:]
        elif kind == 7 and len(out) >= 2:  # a 16-bit value at an even-ish offset
            i = rng.randrange(len(out) - 1)
            out[i:i + 2] = rng.choice((0, 1, 0xFFFF, 0x8000, rng.randrange(1 << 16))).to_bytes(
                2, "big")
        else:  # append random bytes
            out += rng.randbytes(rng.randint(1, 32))
    return bytes(out[:max_len])


def random_inputs(target: str, seed: int, max_len: int = 4096) -> Iterator[bytes]:
    """The seed corpus, then mutants of it and of random inputs, forever (deterministic)."""
    rng = random.Random(f"{target}:{seed}")
    seeds = corpus(target)
    yield from seeds
    pool = list(seeds) or [b""]
    while True:
        if rng.random() < 0.1:
            yield rng.randbytes(rng.randint(0, 64))
            continue
        data = mutate(rng, rng.choice(pool), pool, max_len)
        if rng.random() < 0.05 and len(pool) < 512:
            pool.append(data)  # let mutants breed a little (no coverage to guide it)
        yield data


def run_inputs(target: Target, inputs: Iterator[bytes], recorder: Recorder, runs: int,
               seconds: float | None = None) -> Recorder:
    """Run up to ``runs`` inputs (or ``seconds``), recording findings."""
    deadline = None if seconds is None else time.monotonic() + seconds
    for data in inputs:
        if recorder.runs >= runs or (deadline is not None and time.monotonic() > deadline):
            break
        started = time.perf_counter()
        findings = guarded(target, data)
        recorder.record(data, findings, time.perf_counter() - started)
    return recorder
