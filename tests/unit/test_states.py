"""The RFC 8555 §7.1.6 state machines in certsmith.server.states.

RFC_EDGES is copied by hand from the four figures of §7.1.6, not derived from the code, so
the table in states.py is checked against the RFC rather than against itself.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from certsmith.server.states import TRANSITIONS, InvalidTransition, Kind, check_transition

# Every status RFC 8555 §7.1.6 names for each kind of object, read off its figure.
RFC_STATUSES: dict[Kind, frozenset[str]] = {
    Kind.CHALLENGE: frozenset({"pending", "processing", "valid", "invalid"}),
    Kind.AUTHORIZATION: frozenset(
        {"pending", "valid", "invalid", "deactivated", "expired", "revoked"}
    ),
    Kind.ORDER: frozenset({"pending", "ready", "processing", "valid", "invalid"}),
    Kind.ACCOUNT: frozenset({"valid", "deactivated", "revoked"}),
}

# The arrows of the §7.1.6 figures, one (old, new) pair per arrow.
RFC_EDGES: dict[Kind, frozenset[tuple[str, str]]] = {
    # "State Transitions for Challenge Objects". The "Server retry or client retry request"
    # loop on processing is not a status change ("client requests for retries do not cause
    # a state change"), so it is no edge.
    Kind.CHALLENGE: frozenset(
        {
            ("pending", "processing"),  # Receive response
            ("processing", "valid"),  # Successful validation
            ("processing", "invalid"),  # Failed validation
        }
    ),
    # "State Transitions for Authorization Objects". The line down the right from pending
    # joins the bar that ends in revoked, deactivated and expired, the same bar valid
    # joins; so pending reaches all three, as valid does.
    Kind.AUTHORIZATION: frozenset(
        {
            ("pending", "invalid"),  # Challenge failure or Error
            ("pending", "valid"),  # Challenge valid
            ("pending", "revoked"),  # Server revoke
            ("pending", "deactivated"),  # Client deactivate
            ("pending", "expired"),  # Time after "expires"
            ("valid", "revoked"),  # Server revoke
            ("valid", "deactivated"),  # Client deactivate
            ("valid", "expired"),  # Time after "expires"
        }
    ),
    # "State Transitions for Order Objects".
    Kind.ORDER: frozenset(
        {
            ("pending", "ready"),  # All authz "valid"
            ("pending", "invalid"),  # Error or Authorization failure
            ("ready", "processing"),  # Receive finalize request
            ("ready", "invalid"),  # Error or Authorization failure
            ("processing", "valid"),  # Certificate issued
            ("processing", "invalid"),  # Error or Authorization failure
        }
    ),
    # "State Transitions for Account Objects".
    Kind.ACCOUNT: frozenset(
        {
            ("valid", "deactivated"),  # Client deactiv.
            ("valid", "revoked"),  # Server revoke
        }
    ),
}

# Every status any ACME object can have, so foreign statuses are tried on each kind too.
ALL_STATUSES = sorted(set().union(*RFC_STATUSES.values()))


def _edge_id(kind: Kind, old: str, new: str) -> str:
    return f"{kind.value}:{old}->{new}"


def _rfc_edge_params() -> list[Any]:
    return [
        pytest.param(kind, old, new, id=_edge_id(kind, old, new))
        for kind, edges in RFC_EDGES.items()
        for old, new in sorted(edges)
    ]


def _table_edge_params() -> list[Any]:
    return [
        pytest.param(kind, old, new, id=_edge_id(kind, old, new))
        for kind, table in TRANSITIONS.items()
        for old, targets in sorted(table.items())
        for new in sorted(targets)
    ]


def _forbidden_params() -> list[Any]:
    """Every (old, new) pair over all statuses, per kind, that no §7.1.6 arrow draws."""
    return [
        pytest.param(kind, old, new, id=_edge_id(kind, old, new))
        for kind in Kind
        for old, new in itertools.product(ALL_STATUSES, repeat=2)
        if (old, new) not in RFC_EDGES[kind]
    ]


FORBIDDEN = _forbidden_params()


def test_the_hand_written_figures_are_consistent() -> None:
    for kind, edges in RFC_EDGES.items():
        for old, new in edges:
            assert old in RFC_STATUSES[kind] and new in RFC_STATUSES[kind]
    assert set(RFC_EDGES) == set(RFC_STATUSES) == set(Kind)


def test_forbidden_moves_are_the_whole_cross_product_less_the_rfc_arrows() -> None:
    per_kind = len(ALL_STATUSES) ** 2
    assert len(ALL_STATUSES) == 8
    assert len(FORBIDDEN) == sum(per_kind - len(edges) for edges in RFC_EDGES.values())


@pytest.mark.parametrize(("kind", "old", "new"), _table_edge_params())
def test_every_edge_in_the_table_is_allowed(kind: Kind, old: str, new: str) -> None:
    check_transition(kind, old, new)


@pytest.mark.parametrize(("kind", "old", "new"), _rfc_edge_params())
def test_every_rfc_arrow_is_allowed(kind: Kind, old: str, new: str) -> None:
    check_transition(kind, old, new)


@pytest.mark.parametrize(("kind", "old", "new"), FORBIDDEN)
def test_every_other_move_is_refused(kind: Kind, old: str, new: str) -> None:
    with pytest.raises(InvalidTransition) as excinfo:
        check_transition(kind, old, new)
    message = str(excinfo.value)
    assert kind.value in message and f"{old} -> {new}" in message


@pytest.mark.parametrize("kind", [pytest.param(k, id=k.value) for k in Kind])
def test_the_table_names_exactly_the_rfc_statuses(kind: Kind) -> None:
    assert set(TRANSITIONS[kind]) == RFC_STATUSES[kind]
    for targets in TRANSITIONS[kind].values():
        assert targets <= RFC_STATUSES[kind]


@pytest.mark.parametrize("kind", [pytest.param(k, id=k.value) for k in Kind])
def test_the_table_matches_the_rfc_figure(kind: Kind) -> None:
    table = {(old, new) for old, targets in TRANSITIONS[kind].items() for new in targets}
    assert table == RFC_EDGES[kind]


@pytest.mark.parametrize("kind", [pytest.param(k, id=k.value) for k in Kind])
def test_terminal_statuses_have_no_way_out(kind: Kind) -> None:
    sources = {old for old, _ in RFC_EDGES[kind]}
    terminal = RFC_STATUSES[kind] - sources
    assert terminal, "every §7.1.6 figure ends somewhere"
    for old in terminal:
        assert TRANSITIONS[kind][old] == frozenset()
