#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a circle.

usage: scripts/check-module-cycles.py CRATE_SRC_DIR...   (run by `make test-walls`)

A module's imports are the `crate::<module>` paths in its code (comments and `#[cfg(test)]`
blocks left out); a module and its own submodules count as one. Prints each circle found and exits 1.
"""
import pathlib
import re
import sys


def imports(src: pathlib.Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in src.rglob("*.rs"):
        top = path.relative_to(src).parts[0].removesuffix(".rs")
        text = path.read_text()
        cut = text.find("#[cfg(test)]")
        if cut >= 0:
            text = text[:cut]
        text = re.sub(r"//.*", "", text)
        for module in re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text):
            if module != top:
                graph.setdefault(top, set()).add(module)
    return graph


def circles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycle = path[path.index(nxt):]
                start = cycle.index(min(cycle))
                found.add(tuple(cycle[start:] + cycle[:start]))
            else:
                walk(nxt, path + [nxt])

    for node in sorted(graph):
        walk(node, [node])
    return found


def main() -> int:
    status = 0
    for src in map(pathlib.Path, sys.argv[1:]):
        found = circles(imports(src))
        for cycle in sorted(found):
            print(f"check-module-cycles: {src}: {' -> '.join(cycle + (cycle[0],))}", file=sys.stderr)
            status = 1
        if not found:
            print(f"check-module-cycles: {src}: no import circle between its modules")
    return status


if __name__ == "__main__":
    sys.exit(main())
