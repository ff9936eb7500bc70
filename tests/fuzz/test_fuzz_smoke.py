"""A bounded fuzz run of every target for ``make test``: deterministic (seeded mutator over
the seed corpus), a few thousand inputs per target, on one core.

It fails on any finding whose class is not a known defect (``known.py``: each has a
strict-xfail reproducer in ``test_findings.py``). Known classes are recognised by their
exact class, which names the check or the exception and the ALG line it left from, so
an input that hits a known defect still fails the run if it hits anything else too.
"""

from __future__ import annotations

import importlib

import pytest

from tests.fuzz import engine, known

# Inputs per target: together well under a minute on one core (the gateway target is the
# slow one: a fresh gateway and a script of up to 64 switch events per input).
BUDGET = {"gateway": 1500, "codecs": 6000, "config": 2000, "rest": 2000}
SEED = 13


@pytest.mark.parametrize("target", sorted(BUDGET))
def test_fuzz_smoke(target: str) -> None:
    module = importlib.import_module(f"tests.fuzz.target_{target}")
    recorder = engine.run_inputs(module.run, engine.random_inputs(target, SEED),
                                 engine.Recorder(target), BUDGET[target])
    assert recorder.runs == BUDGET[target]
    unknown = {cls: recorder.details[cls] for cls in recorder.counts if known.test_for(cls) is None}
    report = "\n\n".join(f"{cls} ({recorder.counts[cls]} inputs; smallest "
                         f"{recorder.smallest[cls].hex()})\n{detail}"
                         for cls, detail in unknown.items())
    assert not unknown, f"new findings (replay with python -m tests.fuzz {target} --replay " \
                        f"FILE):\n{report}"


def test_every_known_defect_has_its_reproducer() -> None:
    findings = importlib.import_module("tests.fuzz.test_findings")
    for pattern, test in known.KNOWN.items():
        function = getattr(findings, test, None)
        assert function is not None, f"{pattern!r}: no {test} in test_findings.py"
        marks = [m for m in getattr(function, "pytestmark", []) if m.name == "xfail"]
        assert marks and marks[0].kwargs.get("strict"), f"{test} must be xfail(strict=True)"
