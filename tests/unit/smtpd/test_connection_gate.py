"""The SMTP listener's connection caps, counted: in all, per client, exempt networks."""

from __future__ import annotations

import ipaddress

import pytest

from sealmail.smtpd.connection_gate import Admission, ConnectionGate, Refusal

A = ipaddress.ip_address("192.0.2.1")
B = ipaddress.ip_address("192.0.2.2")
V6 = ipaddress.ip_address("2001:db8::1")


def test_one_client_is_capped_while_others_still_get_in() -> None:
    gate = ConnectionGate(max_connections=10, max_per_client=2)
    first, second = gate.admit(A), gate.admit(A)
    assert isinstance(first, Admission) and isinstance(second, Admission)
    assert gate.admit(A) is Refusal.CLIENT_FULL
    assert isinstance(gate.admit(B), Admission)
    gate.release(first)
    assert isinstance(gate.admit(A), Admission)


def test_the_total_caps_every_client_and_unknown_addresses() -> None:
    gate = ConnectionGate(max_connections=2, max_per_client=2)
    held = [gate.admit(None), gate.admit(A)]
    assert gate.admit(B) is Refusal.LISTENER_FULL  # full in all, not B's own cap
    assert gate.open == 2 and dict(gate.by_client) == {A: 1}  # an unknown address is not a client
    for admission in held:
        assert isinstance(admission, Admission)
        gate.release(admission)
    assert gate.open == 0 and not gate.by_client


def test_a_place_is_given_back_once_however_often_it_is_released() -> None:
    gate = ConnectionGate(max_connections=3, max_per_client=3)
    admission = gate.admit(A)
    assert isinstance(admission, Admission)
    gate.release(admission)
    gate.release(admission)  # connection_lost after a refused STARTTLS and a close: still one
    assert gate.open == 0 and gate.by_client[A] == 0


def test_exempt_networks_skip_the_per_client_cap_but_not_the_total() -> None:
    gate = ConnectionGate(
        max_connections=4,
        max_per_client=1,
        exempt=[ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("::1/128")],
    )
    assert all(isinstance(gate.admit(A), Admission) for _ in range(3))
    assert isinstance(gate.admit(V6), Admission)  # an IPv6 client against a v4 network: no TypeError
    assert gate.admit(V6) is Refusal.LISTENER_FULL


@pytest.mark.parametrize(("total", "per_client"), [(0, 1), (1, 0)])
def test_a_limit_below_one_is_refused(total: int, per_client: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionGate(total, per_client)
