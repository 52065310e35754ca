"""Imports go one way: the terminal and the district each import the core, never each
other, and the core neither (docs/architecture.md).

Every import statement of every project module is read from the source (ast), at
module level or inside a function alike, since a lazy import is still a dependency and
can still close a cycle. Each module belongs to one layer; ``ALLOWED`` says which
other layers a layer may import. The table itself must be one-way (checked), so a
failure cannot be fixed by adding the reverse direction to it. No exception list:
an import against the table fails. Cycles are checked between packages (folders) as
well as between modules.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# source folders and the package each installs as (enrollment/ and models/ install inside kiosk)
FOLDERS = {"kiosk": "kiosk", "enrollment": "kiosk.enrollment", "models": "kiosk.models"}

# low-level kiosk modules: no project imports but each other
BASE_MODULES = {"kiosk", "kiosk.errors", "kiosk.money", "kiosk.timeutil", "kiosk.limits", "kiosk.idcard",
                "kiosk.config", "kiosk.datadir"}

BASE = "kiosk (errors, money, timeutil, limits, idcard, config, datadir)"
CORE = {BASE, "kiosk.models", "kiosk.db", "kiosk.billing", "kiosk.vision", "kiosk.enrollment", "kiosk.services"}
TERMINAL = {"kiosk.terminal", "kiosk.ui"}
DISTRICT = {"kiosk.district"}
ENTRY = {"kiosk.bench", "kiosk.cli"}      # the command line and the benchmarks start either deployable
ALL = CORE | TERMINAL | DISTRICT | ENTRY

# which other layers each layer may import
ALLOWED: dict[str, set[str]] = {
    BASE: set(),
    "kiosk.models": set(),                                # the model manifest
    "kiosk.db": {BASE},                                   # the store imports nothing above it
    "kiosk.billing": {BASE},                              # pure money rules: no database, no Qt
    "kiosk.vision": {BASE, "kiosk.models"},               # no database, no Qt
    "kiosk.enrollment": {BASE, "kiosk.db", "kiosk.vision"},
    "kiosk.services": {BASE, "kiosk.models", "kiosk.db", "kiosk.billing", "kiosk.vision", "kiosk.enrollment"},
    # the terminal: its façade, sync client and outbox over the core; the screens over the façade
    "kiosk.terminal": CORE,
    "kiosk.ui": {BASE, "kiosk.services", "kiosk.terminal", "kiosk.billing"},
    # the district server: API, push, feed, reconciliation, reports, console
    "kiosk.district": CORE,
    "kiosk.bench": CORE | TERMINAL - {"kiosk.ui"} | DISTRICT,
    "kiosk.cli": ALL - {"kiosk.cli"},
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
    parts = module.split(".")
    if parts[0] != "kiosk":
        return None                      # third party or the standard library
    sub = "kiosk." + parts[1]
    return sub if sub in ALL else "?"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_path(name: str) -> Path:
    for folder, pkg in sorted(FOLDERS.items(), key=lambda kv: -len(kv[1])):
        if name == pkg or name.startswith(pkg + "."):
            return ROOT.joinpath(folder, *name[len(pkg) + 1:].split(".")) if name != pkg else ROOT / folder
    return ROOT.joinpath(*name.split("."))


def is_module(name: str) -> bool:
    p = source_path(name)
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def package_of(module: str) -> str:
    """The folder a module lives in (a package's own __init__ is its folder)."""
    p = source_path(module)
    return module if (p / "__init__.py").is_file() else module.rpartition(".")[0]


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
    return tuple(i for folder in FOLDERS for f in sorted((ROOT / folder).rglob("*.py")) for i in imports_of(f))


def where(i: Import) -> str:
    return f"{i.path.relative_to(ROOT)}:{i.line}"


def test_every_module_has_a_layer():
    unknown = sorted({module_name(f) for folder in FOLDERS for f in (ROOT / folder).rglob("*.py")
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
        if dst is None or dst == src or dst in ALLOWED.get(src, set()):
            continue
        bad.append(f"{where(i)}: {src} must not import {dst} (`{i.target}`)")
    assert not bad, "imports against the layers (terminal -> core <- district):\n" + "\n".join(bad)


def test_terminal_and_district_never_meet():
    """The table itself: neither deployable may import the other, the core neither."""
    for a in TERMINAL:
        assert not ALLOWED[a] & DISTRICT, a
    for a in DISTRICT:
        assert not ALLOWED[a] & TERMINAL, a
    for a in CORE:
        assert not ALLOWED[a] & (TERMINAL | DISTRICT | ENTRY), a


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
    """Module by module (lazy imports too): no cycle that crosses from one layer into another."""
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


def test_no_import_cycle_between_packages():
    """Folder by folder: no two packages import each other, directly or round a circle
    (kiosk.district and kiosk.district.console are two packages)."""
    graph: dict[str, set[str]] = {}
    lines: dict[tuple[str, str], str] = {}
    for i in all_imports():
        if layer_of(i.target) is None:
            continue
        a, b = package_of(i.source), package_of(i.target)
        if a != b:
            graph.setdefault(a, set()).add(b)
            lines.setdefault((a, b), f"{where(i)}: {i.source} -> {i.target}")
    cycles = ["\n  ".join(sorted(lines[a, b] for a in comp for b in graph.get(a, ()) if b in comp))
              for comp in strongly_connected(graph) if len(comp) > 1]
    assert not cycles, "import cycles between packages:\n  " + "\n\n  ".join(cycles)


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
