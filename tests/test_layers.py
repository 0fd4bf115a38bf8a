"""The file list tells the architecture, and the imports keep to it: a layer imports only the layers to its
left (foundation, storage, audio, model, commands, web, cli), checked on every import statement, including
those inside functions; imports only for type checking do not count."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "drumcat"
LAYERS = ["foundation", "storage", "audio", "model", "commands", "web", "cli"]


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "cli" if parts[-1] == "cli" else "foundation"


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("drumcat"):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("drumcat")]
    return found


def test_every_module_imports_only_layers_to_its_left() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "drumcat." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        own = LAYERS.index(layer_of(module))
        for line, imported in imports_of(path):
            if LAYERS.index(layer_of(imported)) > own:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer_of(module)}) imports {imported}")
    assert wrong == []


def test_the_package_is_grouped_by_layer() -> None:
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file())
    assert {"storage", "audio", "model", "commands", "web"} <= set(top)
    assert len([name for name in top if name.endswith(".py")]) <= 12  # the foundation and the CLI only
