"""Imports go one way (the developers' guide): ui -> services -> (billing, vision, db).

Every import statement of every project module is read from the source (ast), at
module level or inside a function alike, since a lazy import is still a dependency and
can still close a cycle. Each module belongs to one layer; ``ALLOWED`` says which
other layers a layer may import. The table itself must be one-way (checked), so a
failure cannot be fixed by adding the reverse direction to it. The few imports
that go the other way on purpose are listed, each with its reason, in ``UPWARD``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kiosk", "enrollment", "models")

# low-level kiosk modules: no project imports but each other
BASE_MODULES = {"kiosk", "kiosk.errors", "kiosk.money", "kiosk.timeutil", "kiosk.limits", "kiosk.idcard",
                "kiosk.config", "kiosk.datadir"}
# programs that drive the services from outside (the demo and the benchmarks)
APP_MODULES = {"kiosk.demo", "kiosk.bench", "kiosk.bench_district"}

BASE = "kiosk (errors, money, timeutil, limits, idcard, config, datadir)"
APPS = "kiosk.demo / kiosk.bench*"
ALL = {BASE, "models", "kiosk.db", "kiosk.billing", "kiosk.vision", "enrollment", "kiosk.services",
       "kiosk.sync", "kiosk.server", APPS, "kiosk.ui", "kiosk.cli"}

# which other layers each layer may import
ALLOWED: dict[str, set[str]] = {
    BASE: set(),
    "models": set(),                                      # the model manifest
    "kiosk.db": {BASE},                                   # the store imports nothing above it
    "kiosk.billing": {BASE},                              # pure money rules: no database, no Qt
    "kiosk.vision": {BASE, "models"},                     # no database, no Qt
    "enrollment": {BASE, "kiosk.db", "kiosk.vision"},     # used by the services, never the reverse
    "kiosk.services": {BASE, "models", "kiosk.db", "kiosk.billing", "kiosk.vision", "enrollment"},
    "kiosk.sync": {BASE, "kiosk.db", "kiosk.services"},
    "kiosk.server": {BASE, "kiosk.db", "kiosk.billing", "kiosk.services", "kiosk.sync"},
    APPS: ALL - {APPS, "kiosk.ui", "kiosk.cli"},
    "kiosk.ui": {BASE, "kiosk.services", APPS},           # the screens call the services only
    "kiosk.cli": ALL - {"kiosk.cli"},
}

# imports against the table, on purpose: (importing module, imported module) -> why
UPWARD: dict[tuple[str, str], str] = {
    ("kiosk.services.checkout", "kiosk.sync.outbox"): "the services' one hook into the district (outbox)",
    ("kiosk.services.faces", "kiosk.sync.outbox"): "the services' one hook into the district (outbox)",
    ("kiosk.services.kiosk", "kiosk.sync.status"): "the running kiosk starts and shows its sync",
    ("kiosk.services.district_reports", "kiosk.server.reconcile"): "the district's reconciliation, on a server",
}


# third-party packages a layer must not import
FORBIDDEN_LIBS: dict[str, set[str]] = {
    "kiosk.ui": {"sqlalchemy", "alembic", "cv2", "onnxruntime", "faiss", "insightface"},
    "kiosk.billing": {"sqlalchemy", "alembic"},
    "kiosk.vision": {"sqlalchemy", "alembic"},
}
QT = {"PySide6", "shiboken6"}           # Qt: only in kiosk.ui


@dataclass(frozen=True)
class Import:
    source: str          # importing module
    path: Path
    line: int
    target: str          # imported module, absolute


def layer_of(module: str) -> str | None:
    if module in BASE_MODULES:
        return BASE
    if module in APP_MODULES:
        return APPS
    top = module.split(".")[0]
    if top in ("enrollment", "models"):
        return top
    if top != "kiosk":
        return None                      # third party or the standard library
    sub = "kiosk." + module.split(".")[1]
    return sub if sub in ALL else "?"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    """Every import in the file, anywhere in it, resolved to absolute module names."""
    source = module_name(path)
    package = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(source, path, node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for a in node.names:         # `from pkg import module` imports pkg.module
                sub = f"{base}.{a.name}"
                found.append(Import(source, path, node.lineno, sub if is_module(sub) else base))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            found.append(Import(source, path, node.lineno, node.args[0].value))
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(i for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py")) for i in imports_of(f))


def where(i: Import) -> str:
    return f"{i.path.relative_to(ROOT)}:{i.line}"


def test_every_module_has_a_layer():
    unknown = sorted({module_name(f) for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py")
                      if layer_of(module_name(f)) in (None, "?")})
    assert not unknown, f"put these modules in a layer in tests/test_layers.py: {unknown}"


def test_the_layer_table_goes_one_way():
    """No cycle in ALLOWED itself (a layer allowed to import one that may import it back)."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in ALLOWED[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen
    assert set(ALLOWED) == ALL
    both_ways = sorted(f"{a} <-> {b}" for a in ALLOWED for b in ALLOWED[a] if a in reach(b) or a == b)
    assert not both_ways, f"the layer table has a cycle: {both_ways}"


def test_imports_go_one_way():
    bad = []
    for i in all_imports():
        src, dst = layer_of(i.source), layer_of(i.target)
        if dst is None or dst == src or dst in ALLOWED.get(src, set()) or (i.source, i.target) in UPWARD:
            continue
        bad.append(f"{where(i)}: {src} must not import {dst} (`{i.target}`)")
    assert not bad, "imports against the layers (ui -> services -> billing, vision, db):\n" + "\n".join(bad)


def test_the_exceptions_are_still_needed():
    used = {(i.source, i.target) for i in all_imports()}
    stale = sorted(f"{a} -> {b}" for a, b in UPWARD.keys() if (a, b) not in used)
    assert not stale, f"these imports are gone: remove them from UPWARD in tests/test_layers.py: {stale}"


def test_qt_and_sql_stay_in_their_layers():
    bad = []
    for i in all_imports():
        src, lib = layer_of(i.source), i.target.split(".")[0]
        if lib in QT and src != "kiosk.ui":
            bad.append(f"{where(i)}: only kiosk.ui may import Qt, {src} imports `{i.target}`")
        if lib in FORBIDDEN_LIBS.get(src, set()):
            bad.append(f"{where(i)}: {src} must not import `{i.target}`")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_layers():
    """Module by module (lazy imports too): no cycle that crosses from one layer into
    another, through the allowed upward imports either."""
    graph: dict[str, set[str]] = {}
    lines: dict[tuple[str, str], str] = {}
    for i in all_imports():
        if layer_of(i.target) is not None:
            graph.setdefault(i.source, set()).add(i.target)
            lines.setdefault((i.source, i.target), where(i))
    cycles = []
    for comp in strongly_connected(graph):
        if len({layer_of(m) for m in comp}) > 1:
            edges = sorted(f"{lines[a, b]}: {a} -> {b}" for a in comp for b in graph.get(a, ()) if b in comp)
            cycles.append("\n  ".join(edges))
    assert not cycles, "import cycles across layers:\n  " + "\n\n  ".join(cycles)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out
