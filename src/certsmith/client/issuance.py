"""One certificate from order to chain: solve every authorization, finalize, download."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from certsmith.acme.identifiers import Identifier
from certsmith.acme.jose import key_authorization
from certsmith.acme.keys import PrivateKey, build_csr
from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.client.orders import (
    Order,
    OrderFailed,
    download,
    finalize,
    new_order,
    wait_until_ready,
)
from certsmith.client.session import AcmeClientError, AcmeSession
from certsmith.client.solvers import Solver


@dataclass(frozen=True)
class Task:
    """One pending authorization and how it will be answered."""

    authorization_url: str
    identifier: dict[str, str]
    challenge: dict[str, Any]
    solver: Solver

    @property
    def name(self) -> str:
        wildcard = "*." if self.identifier.get("wildcard") else ""
        return wildcard + self.identifier["value"]


def plan(authorizations: list[tuple[str, dict[str, Any]]], solvers: Sequence[Solver]) -> list[Task]:
    """Pick, for each pending authorization, the first solver whose challenge it offers."""
    tasks = []
    for url, authz in authorizations:
        if authz.get("status") == "valid":
            continue
        offered = {c.get("type"): c for c in authz.get("challenges", [])}
        solver = next((s for s in solvers if s.challenge_type in offered), None)
        identifier = dict(authz["identifier"])
        if authz.get("wildcard"):
            identifier["wildcard"] = "true"
        if solver is None:
            kinds = ", ".join(sorted(str(k) for k in offered)) or "none"
            raise AcmeClientError(
                f"{identifier['value']}: the CA offers {kinds}; choose a matching solver"
                + (" (wildcards need dns-01)" if authz.get("wildcard") else "")
            )
        tasks.append(Task(url, identifier, offered[solver.challenge_type], solver))
    return tasks


async def _solve(session: AcmeSession, tasks: list[Task], max_wait: float) -> None:
    """Publish every response, then answer every challenge, then wait for every result."""
    presented: list[Task] = []
    try:
        for task in tasks:
            token = task.challenge["token"]
            # Listed first: a present that published and then failed still gets cleaned up.
            presented.append(task)
            await task.solver.present(
                _plain(task.identifier), token, key_authorization(token, session.key)
            )
        await asyncio.gather(*(session.post(t.challenge["url"], {}) for t in tasks))
        results = await asyncio.gather(
            *(
                session.poll(
                    t.authorization_url,
                    lambda b: b.get("status") not in ("pending", "processing"),
                    max_wait=max_wait,
                )
                for t in tasks
            )
        )
    finally:
        for task in presented:
            token = task.challenge["token"]
            await task.solver.cleanup(
                _plain(task.identifier), token, key_authorization(token, session.key)
            )
    failures = [_why(t, r) for t, r in zip(tasks, results, strict=True) if r["status"] != "valid"]
    if failures:
        problem = failures[0][1]
        raise OrderFailed("; ".join(message for message, _ in failures), problem)


def _plain(identifier: dict[str, str]) -> dict[str, str]:
    return {"type": identifier["type"], "value": identifier["value"]}


def _why(task: Task, authz: dict[str, Any]) -> tuple[str, AcmeProblem | None]:
    challenge: dict[str, Any] = next(
        (c for c in authz.get("challenges", []) if c.get("url") == task.challenge["url"]), {}
    )
    error = challenge.get("error")
    problem = AcmeProblem.from_dict(error) if isinstance(error, dict) else None
    detail = problem.detail if problem else f"authorization is {authz.get('status')}"
    return f"{task.name} ({task.solver.challenge_type}): {detail}", problem


async def obtain(
    session: AcmeSession,
    identifiers: list[Identifier],
    solvers: Sequence[Solver],
    key: PrivateKey,
    *,
    profile: str | None = None,
    preferred_chain: str | None = None,
    replaces: str | None = None,
    max_wait: float = 120.0,
) -> str:
    """A PEM chain for `identifiers` whose leaf certifies `key` (RFC 8555 §7.4)."""
    order: Order = await new_order(session, identifiers, profile, replaces)
    urls = order.body.get("authorizations", [])
    bodies = await asyncio.gather(*(session.get_json(url) for url in urls))
    await _solve(session, plan(list(zip(urls, bodies, strict=True)), solvers), max_wait)
    dns = [i.value for i in identifiers if i.type == "dns"]
    ips = [i.value for i in identifiers if i.type == "ip"]
    csr = build_csr(key, dns, ip_addresses=ips)
    try:
        # Every authorization is valid, so the order is ready: finalize without asking.
        order = await finalize(session, order, csr, max_wait)
    except AcmeProblem as problem:
        if problem.type is not ProblemType.ORDER_NOT_READY:
            raise
        # A CA may turn the order ready a moment after its authorizations (RFC 8555 §7.4).
        order = await wait_until_ready(session, order, max_wait)
        order = await finalize(session, order, csr, max_wait)
    return await download(session, order.body["certificate"], preferred_chain)
