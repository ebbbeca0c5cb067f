"""The layout is the architecture: the import rules of docs/architecture.md, checked on the source.

Every import of the four packages is read from the code (module-level and inside functions), so
a rule cannot be broken by a lazy import either. A failure names the module, the line and the rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from backtests.cli import ARGUMENT_OPTIONS, describe_error
from backtests.store import RunError
from data.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("data", "models", "strategy", "backtests")
MAX_LINES = 600
LONG_ALLOWED = {"strategy/fast.py": "the compiled simulator's kernel is one numba function family"}

# Layers inside backtests/ (a module's layer is its first matching prefix).
ANALYSIS = ("backtests.analysis",)
REPORTS = ("backtests.reports",)
STORE = ("backtests.store",)
EXECUTION = ("backtests.execution",)
STUDIES = ("backtests.backtest", "backtests.workflows", "backtests.walkforward", "backtests.sweep",
           "backtests.compare", "backtests.paper")
# A sweep may use walk-forward's task generator; compare reads the results the other studies
# recorded through each one's public record reader (walkforward_record, paper_record/read_account),
# so each file format keeps one home: the study that writes it.
STUDY_EXCEPTIONS = {("backtests.sweep", "backtests.walkforward"),
                    ("backtests.compare", "backtests.walkforward"), ("backtests.compare", "backtests.paper")}
RECORD_READERS = {"backtests.walkforward": {"walkforward_record"},
                  "backtests.paper": {"paper_record", "read_account"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8")))
    return out


SOURCES = _sources()


def _is_package(name: str) -> bool:
    path, _ = SOURCES[name]
    return path.name == "__init__.py"


def _imports(name: str) -> list[tuple[str, int, str | None]]:
    """(module imported, line, name imported from it or None) for every import of ours."""
    path, tree = SOURCES[name]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in SOURCES:                   # `from package import submodule`
                    found.append((sub, node.lineno, None))
                else:
                    found.append((node.module, node.lineno, alias.name))
    return [(m, line, what) for m, line, what in found if m.split(".")[0] in PACKAGES]


def _layer(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in layers)


def _study(module: str) -> str | None:
    return next((p for p in STUDIES if module == p or module.startswith(p + ".")), None)


def _violations(rule) -> list[str]:
    out = []
    for name in SOURCES:
        for target, line, what in _imports(name):
            why = rule(name, target, what)
            if why:
                out.append(f"{SOURCES[name][0].relative_to(ROOT)}:{line} imports {target}"
                           f"{'.' + what if what else ''}: {why}")
    return out


def test_packages_keep_their_direction():
    allowed = {"data": {"data"}, "models": {"data", "models"}, "strategy": {"data", "strategy"},
               "backtests": set(PACKAGES)}

    def rule(name, target, what):
        if target.split(".")[0] not in allowed[name.split(".")[0]]:
            return f"{name.split('.')[0]}/ may import only {sorted(allowed[name.split('.')[0]])}"
        return None

    bad = _violations(rule)
    assert not bad, "\n".join(bad)


def test_analysis_and_reports_import_no_store_execution_or_study():
    def rule(name, target, what):
        if _layer(name, ANALYSIS) and (_layer(target, STORE + REPORTS + EXECUTION) or _study(target)):
            return "analysis/ computes from results only (no store, reports, execution or study)"
        if _layer(name, REPORTS) and (_layer(target, STORE + EXECUTION) or _study(target)):
            return "reports/ render only (no store, execution or study)"
        return None

    bad = _violations(rule)
    assert not bad, "\n".join(bad)


def test_studies_do_not_import_each_other():
    def rule(name, target, what):
        a, b = _study(name), _study(target)
        if a and b and a != b and (a, b) not in STUDY_EXCEPTIONS:
            return f"the study {a} uses the study {b}: move what they share to a lower floor"
        if a == "backtests.compare" and b and b != a and (target != b or what not in RECORD_READERS[b]):
            return f"compare reads {b} only through its record readers {sorted(RECORD_READERS[b])}"
        return None

    bad = _violations(rule)
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_a_module():
    """Nor from the benchmarks and tools, which use the packages as a user would."""
    def rule(name, target, what):
        if what and what.startswith("_") and not what.startswith("__"):
            return "a leading-underscore name is private to its module: make it public or move it"
        return None

    bad = _violations(rule)
    for folder in ("benchmarks", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and \
                        node.module.split(".")[0] in PACKAGES:
                    bad += [f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{a.name}"
                            for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_the_front_ends_are_on_top():
    """cli/ and api.py (the Python API) call the studies; no module imports the API, and the
    API does not go through the CLI (flags, printing)."""
    def rule(name, target, what):
        if _layer(target, ("backtests.api",)) and name != "backtests.api":
            return "backtests.api is a front end: nothing below imports it"
        if name == "backtests.api" and _layer(target, ("backtests.cli",)):
            return "the Python API calls the studies, not the CLI"
        return None

    bad = _violations(rule)
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Tarjan's strongly connected components over module imports (a package's own re-exports
    of its submodules aside: ``P/__init__`` importing ``P.x`` is how P shows its surface)."""
    graph: dict[str, set[str]] = {}
    for name in SOURCES:
        edges = set()
        for target, _, _ in _imports(name):
            if target not in SOURCES:
                target = target.rsplit(".", 1)[0] if target.rsplit(".", 1)[0] in SOURCES else target
            if target in SOURCES and target != name and not (
                    _is_package(name) and target.startswith(name + ".")):
                edges.add(target)
        graph[name] = edges
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_is_over_600_lines():
    long = []
    for path, _ in SOURCES.values():
        rel = str(path.relative_to(ROOT))
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in LONG_ALLOWED:
            long.append(f"{rel}: {n} lines")
    assert not long, f"modules over {MAX_LINES} lines (split by concept): {long}"


def _docstring_nodes(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
COMMANDS = ("data", "runs", "config", "paper", "train", "resume", "evaluate", "predict", "attention",
            "backtest", "compare", "demo", "walkforward", "sweep")
COMMAND = re.compile(rf"\battnbt (?:{'|'.join(COMMANDS)})\b")


def test_only_the_cli_prints_exits_or_names_flags_and_commands():
    """Core code raises errors naming config keys; the CLI words flags (``(option --x)``) and
    commands (``see=`` → ``(see `attnbt …`)``). Docstrings and comments may mention both."""
    bad = []
    for name, (path, tree) in SOURCES.items():
        if name.startswith("backtests.cli") or name == "backtests.__main__":
            continue
        rel = path.relative_to(ROOT)
        docs = _docstring_nodes(tree)
        # ``see=`` hands the CLI a command to word: its text is the CLI's to print
        docs |= {id(n) for kw in ast.walk(tree) if isinstance(kw, ast.keyword) and kw.arg == "see"
                 for n in ast.walk(kw.value)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{rel}:{node.lineno}: print() outside cli/")
            if isinstance(node, ast.Attribute) and node.attr == "exit" and \
                    isinstance(node.value, ast.Name) and node.value.id == "sys":
                bad.append(f"{rel}:{node.lineno}: sys.exit outside cli/")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(m.split(".")[0] in ("typer", "click") for m in mods):
                    bad.append(f"{rel}:{node.lineno}: imports a CLI framework outside cli/")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                for pattern, what in ((FLAG, "a command-line flag"), (COMMAND, "an attnbt command")):
                    m = pattern.search(node.value)
                    if m:
                        bad.append(f"{rel}:{node.lineno}: names {what} ({m.group(0)!r}) outside cli/")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("error, shown", [
    (RunError("no run 'ffff' in runs/", see="runs list"), "no run 'ffff' in runs/ (see `attnbt runs list`)"),
    (DataError("not in the cache", source="yahoo:X:1h", see="data fetch X --interval 1h"),
     "yahoo:X:1h: not in the cache (see `attnbt data fetch X --interval 1h`)"),
    (RunError("backtest.period = 'x': choose test"), "backtest.period = 'x': choose test (option --period)"),
    (RunError("no hash; load it with `trust_unhashed` if old"),
     f"no hash; load it with `trust_unhashed` (option {ARGUMENT_OPTIONS['trust_unhashed']}) if old"),
])
def test_the_cli_words_keys_arguments_and_commands(error, shown):
    assert describe_error(error) == shown
