"""Checks on small dependency graphs (prerequisites of skills, ordering constraints between items)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domainfm.errors import DataError


def check_acyclic(edges: Mapping[int, Sequence[int]], names: Sequence[str], where: str) -> None:
    """Raise a :class:`DataError` naming one cycle (``a -> b -> a``, by ``names``) if ``edges`` (node -> the nodes
    it depends on) has any; ``where`` is the file or source the graph came from."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done

    def visit(node: int, path: list[int]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = " -> ".join(names[i] for i in [*path, node])
            raise DataError(f"{where}: prerequisites form a cycle: {cycle}")
        state[node] = 1
        for dependency in edges.get(node, []):
            visit(dependency, [*path, node])
        state[node] = 2

    for node in list(edges):
        visit(node, [])
