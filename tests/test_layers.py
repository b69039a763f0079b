"""The package's layers (docs/ARCHITECTURE.md): core <- training <- measures <- reproduce <- cli, each importing
only itself and the layers before it, and no module imports one that imports it back. Read from the source with
ast, function-level imports included."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "acai"
# Lowest first: the core's evaluations are what training evaluates with, and the measures read the folders of
# trained runs. No exceptions: a layer imports its own modules and those of the layers before it.
LAYERS = ("core", "training", "measures", "reproduce", "cli")
# The packages at the top of acai/ that are no layer's folder, and the layer each belongs to: the shipped
# models build their networks as a run does, and the measures read the weights they resolve.
PLACED = {"pretrained": "training"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The acai modules `path` imports, at any depth of its code, under `if TYPE_CHECKING:` too: a cycle
    of type annotations is a cycle."""
    tree, name = ast.parse(path.read_text()), module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("acai")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("acai"):
                for alias in node.names:  # `from acai.training import checkpoint` names a module
                    found.add(f"{base}.{alias.name}" if (ROOT / Path(*f"{base}.{alias.name}".split("."))).with_suffix(
                        ".py").exists() else base)
    return found - {name}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules} for name, path in modules.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in PLACED:
        return PLACED[parts[1]]
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "cli" if parts[-1] == "cli" else "top"


def allowed(importer: str, imported: str) -> bool:
    if layer(importer) == "top" or layer(imported) == "top":  # acai/__init__.py: the public names
        return True
    return LAYERS.index(layer(imported)) <= LAYERS.index(layer(importer))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (one per back edge)."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node], _ = "open", stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        state[node], _ = "done", stack.pop()

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_the_import_graph_is_read():
    edges = graph()
    assert "acai.training.run" in edges["acai.training.loop"] and "acai.core.nets" in edges["acai.core.models.vae"]


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(graph()) == []


def test_the_cycle_search_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_an_import_up_the_layers_is_refused():
    assert not allowed("acai.core.evaluations", "acai.training.run")
    assert not allowed("acai.training.run", "acai.measures.represent")
    assert allowed("acai.measures.represent", "acai.training.run") and allowed("acai.cli", "acai.core.lines")
    assert not allowed("acai.pretrained", "acai.measures.represent") and allowed("acai.measures.represent",
                                                                              "acai.pretrained")


def test_every_module_is_in_a_layer():
    assert [name for name in graph() if layer(name) == "top"] == ["acai"]


def test_each_layer_imports_only_the_layers_below_it():
    wrong = [f"{a} imports {b}" for a, targets in graph().items() for b in sorted(targets) if not allowed(a, b)]
    assert wrong == []
