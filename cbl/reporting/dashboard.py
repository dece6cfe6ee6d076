"""The saved W&B workspace that compares losses (scripts/dashboard.py, `make dashboard`), built with wandb-workspaces.

Runs (cbl/training/tracking.py) carry the grouping fields as top-level config keys, one wandb group per configuration
(seeds averaged), job_type = method, step = epoch.  The workspace's run set groups runs by dataset, imbalance
factor and group, so every panel shows one mean line / bar per configuration, and its run table (pinned columns)
reads like Table 2: method, loss, beta, gamma, top-1 / top-5 error and many / few-shot accuracy per
configuration, under its dataset and IF.  Table runs (scripts/make_table.py --wandb-project, job type "table")
are left out.

Sections, and the question each answers:
    Table 2: top-1 error by method   which loss / beta / gamma wins on each dataset and IF (last-epoch error as
                                     in the paper, the best epoch, top-5), mean and std over seeds
    Error per epoch                  how each loss (and each method) gets there: top-1 error, train loss, lr
    beta / gamma sweep               a parallel-coordinates plot over beta, gamma and top-1 error, beta against
                                     error, and which hyper-parameter matters most
    Many vs few-shot accuracy        what class balancing buys on the tail and costs on the head
    Per-class accuracy               accuracy of every class per epoch, and at the end against its training count
                                     (the `per_class` table each run logs)

`build_workspace` needs no network (tests check the spec offline); `save_workspace` needs an API key and the
server.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

#: the x axis of every line plot: each run logs `epoch` (and uses it as wandb's step)
X_AXIS = "epoch"
#: leave out the summary runs of scripts/make_table.py
NOT_TABLE_RUNS = 'Metric("JobType") != "table"'
SHOTS = ("many", "medium", "few")
#: the run table's columns, Table 2 style
PINNED_COLUMNS = [
    "config:method", "config:loss", "config:beta", "config:gamma", "config:precision", "summary:top1_err",
    "summary:best_top1_err", "summary:top5_err", "summary:shot_acc/many", "summary:shot_acc/few",
]  # fmt: skip


class DashboardError(Exception):
    """Why the workspace cannot be built or saved, in one line."""


@dataclass(frozen=True)
class Selection:
    """Which runs the workspace shows: every training run of the project, or one sweep / dataset / IF, and an
    extra W&B filter expression (e.g. `Config("loss") == "focal"`)."""

    sweep: str | None = None
    dataset: str | None = None
    imbalance_factor: float | None = None
    filter: str | None = None

    def expression(self) -> str:
        parts = [NOT_TABLE_RUNS]
        if self.sweep:
            parts.append(f"Config(\"sweep\") == {_literal(self.sweep)}")
        if self.dataset:
            parts.append(f"Config(\"dataset\") == {_literal(self.dataset)}")
        if self.imbalance_factor is not None:
            parts.append(f"Config(\"imbalance_factor\") == {_literal(self.imbalance_factor)}")
        if self.filter:
            parts.append(f"({self.filter})")
        return " and ".join(parts)

    def label(self) -> str:
        # W&B refuses symbols (=, <, ...) in a workspace name: a --filter is only mentioned
        parts = [self.sweep, self.dataset, None if self.imbalance_factor is None else f"IF {_literal(self.imbalance_factor)}",
                 "filtered" if self.filter else None]  # fmt: skip
        return ", ".join(p for p in parts if p) or "all runs"


def _literal(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # imbalance factors are logged as integers
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _modules():
    try:
        with warnings.catch_warnings():  # its pydantic-v1 validators warn on import: nothing a user can act on
            warnings.simplefilter("ignore", DeprecationWarning)
            import wandb_workspaces.reports.v2 as wr
            import wandb_workspaces.workspaces as ws
            from wandb_workspaces import expr
    except ImportError as e:
        raise DashboardError(f"the dashboard needs wandb-workspaces ({e}); pip install -e '.[dashboard]'") from e
    return ws, wr, expr


def build_workspace(entity: str, project: str, selection: Selection = Selection(), name: str | None = None):
    """The workspace (a `wandb_workspaces.workspaces.Workspace`), built offline.  Raises DashboardError for a
    filter expression W&B cannot parse."""
    ws, wr, expr = _modules()
    filters = selection.expression()
    try:
        expr.expr_to_filters(filters)
    except Exception as e:  # SyntaxError, ValueError, ...: the user's --filter
        raise DashboardError(f"--filter {selection.filter!r} is not a W&B filter expression ({type(e).__name__}: {e}); "
                             f"e.g. Config(\"loss\") == \"focal\"") from e  # fmt: skip

    def bars(title: str, metrics: list[str]):
        return wr.BarPlot(title=title, metrics=metrics, orientation="h", groupby_aggfunc="mean",
                          groupby_rangefunc="stddev")  # fmt: skip

    def lines(title: str, y: list[str], by: str | None = None, **kw):
        return wr.LinePlot(title=title, x=X_AXIS, y=y, groupby=wr.Config(by) if by else None,
                           groupby_aggfunc="mean", groupby_rangefunc="stderr", **kw)  # fmt: skip

    sections = [
        ws.Section(name="Table 2: top-1 error by method (mean and std over seeds)", is_open=True, panels=[
            bars("Top-1 error (%), last epoch (the paper's number)", ["top1_err"]),
            bars("Top-1 error (%), best epoch", ["best_top1_err"]),
            bars("Top-5 error (%), last epoch", ["top5_err"]),
        ]),
        ws.Section(name="Error per epoch", is_open=True, panels=[
            lines("Top-1 error (%) per epoch, by loss", ["top1_err"], by="loss"),
            lines("Top-1 error (%) per epoch, by method", ["top1_err"], by="method"),
            lines("Top-1 error (%) per epoch, by configuration", ["top1_err"]),
            lines("Training loss per epoch, by loss", ["train_loss"], by="loss"),
            lines("Learning rate", ["lr"]),
        ]),
        ws.Section(name="beta / gamma sweep", is_open=True, panels=[
            wr.ParallelCoordinatesPlot(title="beta, gamma and top-1 error", columns=[
                wr.ParallelCoordinatesPlotColumn(metric=wr.Config("beta"), display_name="beta"),
                wr.ParallelCoordinatesPlotColumn(metric=wr.Config("gamma"), display_name="gamma"),
                wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric("top1_err"), display_name="top-1 error (%)"),
            ]),
            wr.ScatterPlot(title="Top-1 error (%) against beta", x=wr.Config("beta"), y=wr.SummaryMetric("top1_err")),
            wr.ParameterImportancePlot(with_respect_to="top1_err"),
        ]),
        ws.Section(name="Many vs few-shot accuracy", is_open=True, panels=[
            bars("Many / medium / few-shot accuracy (%), last epoch", [f"shot_acc/{g}" for g in SHOTS]),
            wr.ScatterPlot(title="Few-shot against many-shot accuracy (%)", x=wr.SummaryMetric("shot_acc/many"),
                           y=wr.SummaryMetric("shot_acc/few")),
            lines("Few-shot accuracy (%) per epoch, by loss", ["shot_acc/few"], by="loss"),
            lines("Many-shot accuracy (%) per epoch, by loss", ["shot_acc/many"], by="loss"),
        ]),
        ws.Section(name="Per-class accuracy", is_open=True, panels=[
            lines("Per-class accuracy (%) per epoch (class 0 has the most training images)", [],
                  metric_regex="^class_acc/.*"),
            wr.CustomChart(query={"summaryTable": {"tableKey": "per_class"}}, chart_name="wandb/bar/v0",
                           chart_fields={"label": "class", "value": "accuracy"},
                           chart_strings={"title": "Per-class accuracy (%), last epoch"}),
            wr.CustomChart(query={"summaryTable": {"tableKey": "per_class"}}, chart_name="wandb/scatter/v0",
                           chart_fields={"x": "train_count", "y": "accuracy"},
                           chart_strings={"title": "Per-class accuracy (%) against training images"}),
        ]),
    ]  # fmt: skip
    name = name or f"cbl: losses compared ({selection.label()})"
    try:
        return ws.Workspace(
            entity=entity,
            project=project,
            name=name,
            sections=sections,
            settings=ws.WorkspaceSettings(x_axis=X_AXIS, max_runs=100),
            runset_settings=ws.RunsetSettings(
                filters=filters,
                groupby=[expr.Config("dataset"), expr.Config("imbalance_factor"), expr.Metric("Group")],
                pinned_columns=list(PINNED_COLUMNS),
            ),
        )
    except ValueError as e:  # pydantic's ValidationError: the name is the only free text
        reason = str(e).splitlines()[2].strip() if len(str(e).splitlines()) > 2 else str(e)
        raise DashboardError(f"--name {name!r} is not allowed: {reason} (letters, digits and punctuation only)") from e


def workspace_spec(workspace) -> dict[str, Any]:
    """The view W&B stores for the workspace, as JSON-able data (what `save_workspace` uploads)."""
    return workspace._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)


def api_key() -> str | None:
    """The W&B API key wandb would use (WANDB_API_KEY or ~/.netrc after `wandb login`), without the network."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    try:
        import wandb

        return wandb.Api(timeout=5).api_key
    except Exception:
        return None


def save_workspace(workspace) -> str:
    """Save the workspace as a new view of its project; returns its URL.  Raises DashboardError."""
    if not api_key():
        raise DashboardError("saving the workspace needs a W&B API key: run `wandb login` or set WANDB_API_KEY "
                             "(--json PATH or --print shows the workspace without one)")  # fmt: skip
    try:
        if not workspace.entity:
            import wandb

            workspace.entity = wandb.Api(timeout=10).default_entity
        workspace.save()
        return workspace.url
    except Exception as e:  # no network, a wrong entity / project, ...
        base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
        raise DashboardError(f"could not save the workspace to {base} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                             "saving needs the network and an existing --entity / --project") from e  # fmt: skip
