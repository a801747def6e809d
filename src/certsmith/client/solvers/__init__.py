"""Challenge solvers: each publishes a key authorization where one challenge type looks."""

from __future__ import annotations

from typing import Protocol


class Solver(Protocol):
    """Publishes and withdraws challenge responses; used as an async context manager."""

    challenge_type: str

    async def __aenter__(self) -> Solver: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def present(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        """Make the response visible; return once the CA can see it."""

    async def cleanup(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        """Withdraw the response; must not raise for a response never presented."""
