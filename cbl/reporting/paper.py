"""The paper's published numbers (Cui et al., CVPR 2019, Tables 2 and 3) as structured records.

The numbers live in `cbl/reporting/paper_tables.md` (a verbatim copy of the project's PAPER_TABLES.md, shipped as
package data) and are parsed from there, so there is exactly one place where a paper number is typed.
All values are top-1 / top-5 error in percent.  A "-" cell (beta / gamma that do not apply) becomes None.

Public API: `table2() -> list[Table2Row]`, `table3() -> list[Table3Row]`, `table2_row(dataset, IF)`,
`recipe(dataset, IF)` (the training recipe behind a table), `TABLE3_DATASETS`, `FOCAL_GAMMAS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

# TABLE3_DATASETS: Table 3's datasets in column order; recipe: the training recipe behind each table (cbl.training.recipes)
from cbl.training.recipes import TABLE3_DATASETS, recipe  # noqa: F401  (re-exported)

#: Focal-loss gammas of the paper's Table 2 baseline columns.
FOCAL_GAMMAS = (0.5, 1.0, 2.0)

_TABLE2_HEADER = [
    "dataset", "IF", "Softmax", "Sigmoid", "Focal g=0.5", "Focal g=1.0", "Focal g=2.0",
    "Class-Balanced (best)", "CB loss type", "CB beta", "CB gamma",
]  # fmt: skip
_TABLE3_HEADER = [
    "network", "loss", "beta", "gamma", "input", "iNat2017 top-1", "top-5", "iNat2018 top-1", "top-5",
    "ILSVRC2012 top-1", "top-5",
]  # fmt: skip
_DATASETS = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100"}


@dataclass(frozen=True)
class Table2Row:
    """One row of Table 2 (ResNet-32 on long-tailed CIFAR, top-1 test error)."""

    dataset: str  # "cifar10" or "cifar100"
    imbalance_factor: int
    softmax: float
    sigmoid: float
    focal: dict[float, float]  # gamma -> error, gamma in FOCAL_GAMMAS
    cb_best: float
    cb_loss: str  # "softmax", "sigmoid" or "focal"
    cb_beta: float | None  # None where the paper prints "-" (IF 1: the CB term is 1)
    cb_gamma: float | None  # None for softmax / sigmoid


@dataclass(frozen=True)
class Table3Row:
    """One row of Table 3 (large scale, validation error)."""

    network: str  # as printed, e.g. "ResNet-50"
    loss: str  # as printed: "Softmax" or "CB Focal"
    beta: float | None
    gamma: float | None
    input_size: int
    results: dict[str, tuple[float, float]]  # dataset in TABLE3_DATASETS -> (top-1, top-5)

    @property
    def model(self) -> str:
        """The network as `run.model` spells it: "ResNet-50" -> "resnet50"."""
        return self.network.lower().replace("-", "")

    @property
    def loss_type(self) -> str:
        """The loss as `run.loss` spells it: "CB Focal" -> "focal"."""
        return self.loss.lower().removeprefix("cb ").strip()


def _markdown_table(text: str, heading: str, header: list[str]) -> list[tuple[int, list[str]]]:
    """Body rows (line number, cells) of the first Markdown table after the line starting with `heading`."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        raise ValueError(f"paper_tables.md has no section starting with {heading!r}")
    rows: list[tuple[int, list[str]]] = []
    for i in range(start + 1, len(lines)):
        line = lines[i].strip()
        if not line.startswith("|"):
            if rows:
                break  # the blank line after the table ends it
            continue
        rows.append((i + 1, [c.strip() for c in line.strip("|").split("|")]))
    if len(rows) < 2 or rows[0][1] != header:
        got = rows[0][1] if rows else None
        raise ValueError(f"paper_tables.md: the table under {heading!r} should have columns {header}; got {got}")
    return rows[2:]  # drop the header and the |---| line


def _number(cell: str, where: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise ValueError(f"paper_tables.md {where}: expected a number, got {cell!r}") from None


def _optional(cell: str, where: str) -> float | None:
    return None if cell == "-" else _number(cell, where)


def _text() -> str:
    return resources.files("cbl.reporting").joinpath("paper_tables.md").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _table2() -> tuple[Table2Row, ...]:
    out = []
    for lineno, c in _markdown_table(_text(), "## Table 2", _TABLE2_HEADER):
        where = f"line {lineno}"
        if len(c) != len(_TABLE2_HEADER) or c[0] not in _DATASETS:
            raise ValueError(f"paper_tables.md {where}: malformed Table 2 row {c}")
        num = [_number(x, where) for x in c[2:8]]
        out.append(
            Table2Row(
                dataset=_DATASETS[c[0]],
                imbalance_factor=int(c[1]),
                softmax=num[0],
                sigmoid=num[1],
                focal=dict(zip(FOCAL_GAMMAS, num[2:5])),
                cb_best=num[5],
                cb_loss=c[8],
                cb_beta=_optional(c[9], where),
                cb_gamma=_optional(c[10], where),
            )
        )
    return tuple(out)


@lru_cache(maxsize=None)
def _table3() -> tuple[Table3Row, ...]:
    out = []
    for lineno, c in _markdown_table(_text(), "## Table 3", _TABLE3_HEADER):
        where = f"line {lineno}"
        if len(c) != len(_TABLE3_HEADER):
            raise ValueError(f"paper_tables.md {where}: malformed Table 3 row {c}")
        num = [_number(x, where) for x in c[5:]]
        results = {d: (num[2 * k], num[2 * k + 1]) for k, d in enumerate(TABLE3_DATASETS)}
        out.append(
            Table3Row(
                network=c[0],
                loss=c[1],
                beta=_optional(c[2], where),
                gamma=_optional(c[3], where),
                input_size=int(c[4]),
                results=results,
            )
        )
    return tuple(out)


def table2() -> list[Table2Row]:
    """Table 2 in the paper's order: CIFAR-10 then CIFAR-100, IF 200, 100, 50, 20, 10, 1."""
    return list(_table2())


def table3() -> list[Table3Row]:
    """Table 3 in the paper's order."""
    return list(_table3())


def table2_row(dataset: str, imbalance_factor: int | float | None) -> Table2Row | None:
    """The Table 2 row for a dataset ("cifar10" or run-style "cifar10_lt") and IF; None if the paper has none."""
    name = dataset.removesuffix("_lt")
    return next((r for r in _table2() if r.dataset == name and r.imbalance_factor == imbalance_factor), None)
