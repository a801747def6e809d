"""Identifier policy: which names this CA will put into a certificate."""

from __future__ import annotations

from typing import Any

from certsmith.acme.identifiers import Identifier, parse_identifier, rejected
from certsmith.acme.problems import AcmeProblem, ProblemType, malformed


class IdentifierPolicy:
    def __init__(self, blocked_suffixes: tuple[str, ...], max_identifiers: int) -> None:
        self._blocked = tuple(s.lower().strip(".") for s in blocked_suffixes)
        self._max = max_identifiers

    def check_order(self, raw_identifiers: Any) -> list[Identifier]:
        """Normalised, de-duplicated identifiers; every bad one reported as a subproblem."""
        if not isinstance(raw_identifiers, list) or not raw_identifiers:
            raise malformed("'identifiers' must be a non-empty list")
        if len(raw_identifiers) > self._max:
            raise AcmeProblem(
                ProblemType.REJECTED_IDENTIFIER,
                f"an order may hold at most {self._max} identifiers",
            )
        accepted: set[Identifier] = set()
        failures: list[AcmeProblem] = []
        for raw in raw_identifiers:
            try:
                ident = parse_identifier(raw)
                self._check(ident)
            except AcmeProblem as problem:
                if problem.identifier is None:
                    raise
                failures.append(problem)
            else:
                accepted.add(ident)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise AcmeProblem(
                failures[0].type if len({f.type for f in failures}) == 1 else ProblemType.COMPOUND,
                f"{len(failures)} identifiers were refused; see subproblems",
                subproblems=failures,
            )
        return sorted(accepted)

    def _check(self, ident: Identifier) -> None:
        if ident.is_wildcard:
            # TODO: accept wildcards once the VA offers dns-01, the only challenge that may
            # prove control of a whole zone (RFC 8555 §7.1.3).
            raise rejected(ident.value, "wildcard names need dns-01, which is not offered yet")
        name = ident.base
        for suffix in self._blocked:
            if name == suffix or name.endswith("." + suffix):
                raise rejected(ident.value, f"names under {suffix!r} are blocked by policy")
