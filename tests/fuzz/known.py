"""Finding classes of defects that are known and not fixed yet, each with the strict-xfail
test in ``test_findings.py`` that reproduces it. The smoke run tolerates exactly these;
when a fix lands, its reproducer passes (XPASS fails the run): remove the mark and the
entry here.

Keys are regular expressions matched against the whole class (exception classes name
the line, which moves as the code is edited, so those match any line of the file).
"""

from __future__ import annotations

import re

KNOWN: dict[str, str] = {}  # every finding so far is fixed (test_findings.py keeps them)


def test_for(cls: str) -> str | None:
    for pattern, test in KNOWN.items():
        if re.fullmatch(pattern, cls):
            return test
    return None
