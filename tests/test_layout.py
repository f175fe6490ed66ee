"""The package reads top-down as the data flows: a module imports only from its own step or
lower ones, there is no import cycle, no private name crosses a module, and modules and
functions stay small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "niftislice"

#: Steps from the lowest (0) up; a module may import from its own step and lower ones only.
#: Subpackages not listed module by module take their package's step.
LAYERS: list[tuple[str, ...]] = [
    (
        "_version",
        "errors",
        "extras",
        "sample",
        "types",
        "_nib",
        "_startup",
        "_cv2",
        "buffers",
        "temp_files",
        "files",
        "walk",
        "naming",
        "png",
    ),
    # pure training-set pieces that options (parsers) and export (the spool) use
    ("training.pairing", "training.splits", "training.shards", "training.spool"),
    ("read",),
    (
        "orientation",
        "stats",
        "ct",
        "window",
        "window_spec",
        "mapping",
        "slicing",
        "resample",
        "encoding",
    ),
    ("options",),
    ("plan", "sidecar"),
    ("pictures",),  # colour maps, overlays, montages...: what a rendered slice can carry
    ("export", "volume", "describe"),
    ("pictures.preview", "stacking", "batch", "training"),
    ("api",),
    ("cli", "__init__", "__main__"),
]
MAX_MODULE_LINES = 420
MAX_FUNCTION_LINES = 60
#: argparse tables are long lists of declarations, not logic.
FUNCTION_LENGTH_EXEMPT = {("cli.parser", "_add_image_options"), ("cli.parser", "build_parser")}
#: Violations being removed while the layout is reshaped (issue 10); each entry must go, and a
#: fixed one must be deleted here (the tests fail on an entry that no longer occurs).
KNOWN: set[str] = set()
seen_known: set[str] = set()


def known(key: str) -> bool:
    if key in KNOWN:
        seen_known.add(key)
        return True
    return False


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def step_of(module: str) -> int:
    best, best_len = None, -1
    for level, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = level, len(name)
    if best is None:
        raise AssertionError(f"{module}: add it to a step in tests/test_layout.py LAYERS")
    return best


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str | None:
    """The imported module's dotted name inside niftislice, or None for other packages."""
    if node.level == 0:
        name = node.module or ""
        return name[len("niftislice.") :] if name.startswith("niftislice.") else None
    base = module.split(".") if is_package else module.split(".")[:-1]
    if module == "__init__":
        base = []
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, *(node.module.split(".") if node.module else [])])


def imports() -> list[tuple[str, str, list[str], int]]:
    """(importer, imported module, names, line) for every import inside the package."""
    mods = modules()
    out = []
    for module, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = resolve(module, node, path.name == "__init__.py")
                if target is None:
                    continue
                names = [a.name for a in node.names]
                # "from . import x" / "from .read import nifti": the submodule is the target
                subs = [f"{target}.{n}" if target else n for n in names]
                if all(s in mods for s in subs):
                    out += [(module, s, [], node.lineno) for s in subs]
                else:
                    out.append((module, target, names, node.lineno))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("niftislice."):
                        out.append((module, a.name[len("niftislice.") :], [], node.lineno))
    return out


def test_every_module_belongs_to_a_step():
    for module in modules():
        step_of(module)


def test_no_import_from_a_higher_step():
    upward = [
        f"{m} (step {step_of(m)}) imports {t} (step {step_of(t)}) at line {line}"
        for m, t, _, line in imports()
        if t and step_of(t) > step_of(m) and not known(f"{m} imports {t}")
    ]
    assert not upward, "\n".join(upward)


def test_no_private_name_crosses_a_module():
    private = [
        f"{m}:{line} imports {n} from {t}"
        for m, t, names, line in imports()
        for n in names
        if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
    ]
    assert not private, "\n".join(private)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for m, t, _, _ in imports():
        if t in graph and t != m and not m.startswith(t + "."):  # a package's own modules
            graph[m].add(t)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("module", sorted(modules()))
def test_module_and_functions_are_small(module):
    path = modules()[module]
    text = path.read_text()
    n_lines = len(text.splitlines())
    assert n_lines <= MAX_MODULE_LINES or known(f"{module} is long"), f"{module}: {n_lines} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
        and (module, node.name) not in FUNCTION_LENGTH_EXEMPT
        and not known(f"{module}.{node.name}")
    ]
    assert not long, f"{module}: " + ", ".join(long)


def test_the_library_never_prints_or_exits():
    for module, path in modules().items():
        if module.startswith("cli") or module == "__main__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
                owner = getattr(getattr(f, "value", None), "id", "")
                assert name != "print", f"{module}:{node.lineno} prints"
                assert (owner, name) != ("sys", "exit"), f"{module}:{node.lineno} exits"


def test_known_violations_still_occur():
    """Runs last in this file: an entry of KNOWN that was fixed must be deleted from it."""
    stale = KNOWN - seen_known
    assert not stale, f"fixed, delete from KNOWN: {sorted(stale)}"


def _bound_names(tree: ast.Module) -> dict[str, ast.AST]:
    """Names a module binds at its top level (imports, definitions, assignments, and the keys of
    a PEP 562 ``_LAZY`` table), each with the node that binds it."""
    bound: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for a in node.names:
                bound[(a.asname or a.name).split(".")[0]] = node
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            bound[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    bound[t.id] = node
                    if t.id == "_LAZY" and isinstance(node.value, ast.Dict):
                        for key in node.value.keys:
                            if isinstance(key, ast.Constant):
                                bound[key.value] = node
    return bound


def test_no_name_shadows_a_submodule():
    """``package.x`` is the submodule ``x`` or nothing: a function or class of the same name
    would hide the module from ``import package.x`` users and from ``monkeypatch``."""
    mods = modules()
    shadows = []
    for package, path in mods.items():
        if path.name != "__init__.py":
            continue
        prefix = "" if package == "__init__" else package + "."
        for name, node in _bound_names(ast.parse(path.read_text())).items():
            if f"{prefix}{name}" not in mods:
                continue
            is_module = isinstance(node, ast.ImportFrom) and any(
                a.name == name and not a.asname and not node.module for a in node.names
            )
            if not is_module:
                shadows.append(f"{prefix}{name} is a submodule and a name in {package}")
    assert not shadows, "\n".join(shadows)
