"""The package's imports run one way (cbl/__init__.py): every `cbl.*` import, at module level or inside a function,
goes from a layer to one below it, so no module needs one that needs it back.

    entrypoints (train.py, evaluate.py, commands/)  >  reporting  >  training  >  models, data, losses, evaluation  >  cli
"""

from __future__ import annotations

import ast
from pathlib import Path

import cbl

PACKAGE = Path(cbl.__file__).parent
LAYER = {"cli": 0, "losses": 1, "data": 1, "models": 1, "evaluation": 1, "training": 2, "reporting": 3,
         "commands": 4, "train": 4, "evaluate": 4}  # fmt: skip
#: the imports that cross sideways inside layer 1, each for a reason
SIDEWAYS = {
    ("losses", "data"): "cbl-weights --dataset reads the long-tailed CIFAR profile, imported only then",
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "cbl":
            out += [f"cbl.{a.name}" for a in node.names] if node.module == "cbl" else [node.module]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "cbl"]
    return out


def test_every_room_has_a_layer():
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").is_file())}
    assert rooms == set(LAYER), "place a new module of cbl/ in tests/test_layers.py's LAYER"


def test_imports_run_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _room("cbl." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if source not in LAYER:  # cbl/__init__.py
            continue
        for target in _imports(path):
            room = _room(target)
            if room in ("", source) or (source, room) in SIDEWAYS:
                continue
            if LAYER[room] >= LAYER[source]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_sideways_imports_are_lazy():
    """An allowed sideways import sits inside a function, so importing the room itself does not pull the other in."""
    for (source, room), why in SIDEWAYS.items():
        for path in sorted((PACKAGE / source).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
            for node in top:
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(_room(n) == room for n in names), f"{path}: module-level import of cbl.{room} ({why})"
