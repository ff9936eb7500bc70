from __future__ import annotations

import pytest

from tests.unit.fakeswitch import FakeClock


@pytest.fixture
def clock():
    return FakeClock()
