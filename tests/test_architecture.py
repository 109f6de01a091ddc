"""The house rules, checked by parsing every import (lazy ones inside functions included).

- No import cycle between packages.
- app/settings.py imports no Seedgrid package: the domain checks live in app/config.py.
- Domain packages (protocol, backends, verification, scoring, chain) import no Celery and
  no web framework, and nothing above them (config, tasks, the services, the CLI).
- The queue enum is a leaf: it imports the catalogue only.
- Only test equipment knows the cheats: no service module imports app.testkit.
"""

import ast
from collections import defaultdict
from pathlib import Path

from .conftest import ROOT

DOMAIN = ("app.protocol", "app.backends", "app.verification", "app.scoring", "app.chain")
FRAMEWORKS = ("celery", "kombu", "fastapi", "starlette", "uvicorn", "flask", "flower")
ABOVE_DOMAIN = ("app.config", "app.tasks", "app.celery_app", "app.validator", "app.miner", "app.cli", "app.testkit",
                "app.local_network", "app.demo", "app.generation", "app.gateway", "app.web", "workers", "beat_schedule")


def _modules() -> dict[str, Path]:
    files = [*(ROOT / "app").rglob("*.py"), *(ROOT / "workers").glob("*.py"), ROOT / "beat_schedule.py"]
    out = {}
    for f in files:
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def imports_of(module: str) -> set[str]:
    """Every module `module` imports, at any depth of its code (absolute names)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return found


def package(module: str) -> str:
    """app.validator.rounds -> app.validator; app.settings -> app.settings; workers.gpu -> workers."""
    parts = module.split(".")
    if parts[0] != "app":
        return parts[0]
    return ".".join(parts[:2])


def ours(name: str) -> bool:
    return name.split(".")[0] in ("app", "workers", "beat_schedule")


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for m in MODULES:
        for target in filter(ours, imports_of(m)):
            if package(target) != package(m):
                graph[package(m)].add(package(target))
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"package import cycles: {cycles}; edges: " + "; ".join(
        f"{a} -> {b}" for c in cycles for a in c for b in sorted(graph[a]) if b in c)


def test_settings_import_no_seedgrid_package():
    assert not [i for i in imports_of("app.settings") if ours(i)]


def test_domain_packages_import_no_framework_and_nothing_above_them():
    bad = []
    for m in MODULES:
        if not m.startswith(DOMAIN):
            continue
        for i in imports_of(m):
            if i.split(".")[0] in FRAMEWORKS or i.startswith(ABOVE_DOMAIN):
                bad.append(f"{m} imports {i}")
    assert not bad, bad


def test_the_queue_enum_is_a_leaf():
    assert {i for i in imports_of("app.queues") if ours(i)} == {"app.protocol.catalogue"}


def test_only_test_equipment_and_the_commands_that_start_it_load_the_cheats():
    loaders = {m for m in MODULES if any(i.startswith("app.testkit") for i in imports_of(m))}
    assert loaders <= {"app.cli.network", "app.cli.core", "app.local_network", "app.testkit.cheats",
                       "app.testkit.calibration", "app.testkit.trajectory_calibration"}, loaders
