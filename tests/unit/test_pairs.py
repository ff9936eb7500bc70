"""GreKey's call index: one call stored bare, several in a dict, nothing left behind."""

from __future__ import annotations

from ipaddress import IPv4Address
from itertools import permutations

import pytest

from ryu_pptp_alg.pairs import GreKey
from ryu_pptp_alg.session import Call


def key() -> GreKey:
    return GreKey(1, IPv4Address("198.51.100.10"), IPv4Address("203.0.113.1"))


@pytest.mark.parametrize("order", list(permutations(range(3))))
def test_calls_are_found_by_inward_id_until_unindexed(order):
    gre_key = key()
    calls = [Call(client_call_id=i, public_call_id=100 + i, created=0.0) for i in range(3)]
    for call in calls:
        gre_key.index_call(call)
    assert [gre_key.call(100 + i) for i in range(3)] == calls
    assert gre_key.call(99) is None
    for gone, i in enumerate(order, 1):
        gre_key.unindex_call(calls[i])
        assert gre_key.call(100 + i) is None
        assert [gre_key.call(100 + j) for j in order[gone:]] == [calls[j] for j in order[gone:]]
    assert gre_key.calls is None and gre_key.unused


def test_another_call_with_the_id_is_not_unindexed():
    gre_key = key()
    first = Call(client_call_id=1, public_call_id=7, created=0.0)
    stranger = Call(client_call_id=2, public_call_id=7, created=0.0)
    gre_key.index_call(first)
    gre_key.unindex_call(stranger)
    assert gre_key.call(7) is first
