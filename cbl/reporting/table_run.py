"""A generated table (scripts/make_table.py) as a wandb run, so that the README and the dashboard show one set of
numbers.

The run (job_type "table", group "tables") holds the table as a `wandb.Table` under `table/<name>` whose columns
are the Markdown table's header and whose rows are its rows, cell for cell as printed (means, "± std (n=k)", Δ
and paper rows included), the whole Markdown as the summary field `markdown`, and any figures as images under
`figures/<file stem>`.  Each table name logs to its own folder, <wandb_dir>/table-<name>/wandb, and the newest run
there supersedes the older ones (cbl/training/tracking.py): `wandb sync` uploads the table once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cbl.training.tracking import Tracker


class TableRunError(Exception):
    """Why a table could not be logged to wandb, in one line."""


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_table(markdown: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first pipe table in `markdown` (a caption and notes around it are skipped)."""
    lines = markdown.splitlines()
    for i in range(len(lines) - 1):
        if lines[i].lstrip().startswith("|") and set(lines[i + 1].replace("|", "").strip()) <= set("-: ") \
                and "-" in lines[i + 1]:  # fmt: skip
            header, rows = _cells(lines[i]), []
            for line in lines[i + 2 :]:
                if not line.lstrip().startswith("|"):
                    break
                rows.append(_cells(line))
            return header, rows
    raise TableRunError("the generated Markdown holds no table")


def unique_columns(header: Sequence[str]) -> list[str]:
    """wandb.Table column names: an empty header (the ours / paper column) becomes "source", and a header that
    occurs more than once takes the first word of the column before it ("iNat2017 top-1", "top-5" -> "iNat2017
    top-5")."""
    header = [name or "source" for name in header]
    out: list[str] = []
    for i, name in enumerate(header):
        if header.count(name) > 1 and i > 0:
            name = f"{header[i - 1].split()[0]} {name}"
        while name in out:  # still not unique: mark it
            name += "'"
        out.append(name)
    return out


def log_table(markdown: str, *, name: str, project: str, mode: str = "offline", entity: str | None = None,
              wandb_dir: str | Path = "outputs/tables", figures: Sequence[str | Path] = (),
              config: dict | None = None, init_timeout: float = 60.0) -> str:
    """Log the table of `markdown` (and `figures`) as one wandb run; returns its id.  Raises TableRunError."""
    header, rows = markdown_table(markdown)
    columns = unique_columns(header)
    missing = [str(f) for f in figures if not Path(f).is_file()]
    if missing:
        raise TableRunError(f"figure {missing[0]} does not exist")
    tracker = Tracker(
        mode=mode, project=project, entity=entity, run_dir=Path(wandb_dir) / f"table-{name}", name=f"table-{name}",
        group="tables", job_type="table", tags=["table", name], config={"table": name, **(config or {})},
        init_timeout=init_timeout,
    )
    if tracker.active:
        import wandb

        payload = {f"table/{name}": wandb.Table(columns=columns, data=[(r + [""] * len(columns))[: len(columns)] for r in rows])}
        payload.update({f"figures/{Path(f).stem}": wandb.Image(str(f)) for f in figures})
        tracker.log(payload)
        tracker.summary({"markdown": markdown, "rows": len(rows)})
    error, run_id = tracker.error, tracker.run_id
    tracker.finish(0)
    if error:
        raise TableRunError(error)
    return run_id
