"""The package's shape: no import cycles, nothing private imported across modules, no oversized modules."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "python" / "sensinet"
EXTENSIONS = ("_core", "_cuda")
MAX_LINES = 650


def _modules() -> dict:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: pathlib.Path, mods: dict) -> list:
    """(target module, imported names) of every relative import outside ``if TYPE_CHECKING:``."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and id(node) not in skip:
            base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            names = [a.name for a in node.names]
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
            attrs = [n for n in names if f"{target}.{n}" not in mods and n not in EXTENSIONS]
            out += [(s, []) for s in subs]
            if attrs and target in mods:
                out.append((target, attrs))
    return out


def test_no_import_cycles():
    mods = _modules()
    graph = {m: {t for t, _ in _imports(m, p, mods) if t != m} for m, p in mods.items()}
    cycles, state, stack = [], {}, []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                cycles.append(" -> ".join(stack[stack.index(v):] + [v]))
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    # the package __init__ re-exports its modules; a module importing from the package itself would close a cycle
    assert cycles == []


def test_nothing_private_is_imported_across_modules():
    mods = _modules()
    bad = [f"{m} imports {n} from {t}" for m, p in mods.items() for t, names in _imports(m, p, mods)
           for n in names if n.startswith("_") and not n.startswith("__")]
    assert bad == []


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_stay_small(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by concept"


def _private_attribute_reads(path: pathlib.Path) -> list:
    """``obj._name`` reads (obj not self/cls) of private names this module does not define itself."""
    tree = ast.parse(path.read_text())
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            defined.add(node.value.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_"):
            defined.add(node.value)  # __dict__["_key"]-style storage
    defined |= {"_fields", "_replace", "_asdict", "_make"}  # the public API of named tuples
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in defined):
            out.append(f"{path.name}:{node.lineno} .{node.attr}")
    return out


def test_no_private_attribute_is_read_across_modules():
    bad = [hit for p in _modules().values() for hit in _private_attribute_reads(p)]
    assert bad == []


def test_every_public_function_method_and_property_has_a_docstring():
    """The API a user reads: every public function, class, method and property of the public modules says what it
    does (private modules' helpers are left to their comments)."""
    import importlib
    import inspect
    import pkgutil

    import sensinet

    missing, seen = [], set()
    for info in pkgutil.walk_packages(sensinet.__path__, "sensinet."):
        parts = info.name.split(".")[1:]
        if any(p.startswith("_") for p in parts) or parts[0] == "experiments":
            continue
        mod = importlib.import_module(info.name)
        for name in getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]:
            obj = getattr(mod, name, None)
            home = getattr(obj, "__module__", "") or ""
            if obj is None or inspect.ismodule(obj) or not home.startswith("sensinet.") or \
                    any(p.startswith("_") for p in home.split(".")[1:]) or id(obj) in seen:
                continue
            seen.add(id(obj))
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
                missing.append(f"{home}.{name}")
            if inspect.isclass(obj):
                for attr, v in vars(obj).items():
                    f = v.fget if isinstance(v, property) else getattr(v, "__func__", v)
                    if not attr.startswith("_") and inspect.isfunction(f) and not (f.__doc__ or "").strip():
                        missing.append(f"{home}.{name}.{attr}")
    assert missing == []
