"""The history of drift reports in an Evidently workspace (INKLOOP_HOME/evidently), which `inkloop drift ui` serves.

One project, "inkloop production", with a dashboard of what an ML engineer watches over time: the share of drifted
columns, the mean confidence, the estimated against the audited CER, and the refusal rate. Each panel plots a
metric every report computes (monitoring.drift.run_report), so every report adds a point to each.

Idempotent: a report's snapshot id is derived from its windows (uuid5 of the window key), so a rerun for the same
windows overwrites its snapshot instead of adding a second point, and a run killed half-way through writing it is
healed by the next. The dashboard's panels are checked by title on every run and the missing ones added.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from evidently.sdk.models import DashboardPanelPlot
    from evidently.ui.workspace import Project, Workspace

PROJECT = "inkloop production"
DESCRIPTION = "Production traffic of the inkloop recognizer against its reference window (inkloop flow run drift)."
_NAMESPACE = uuid.UUID("5b0e0a4e-8a47-4d0c-9f0e-1f1c7c3d2a10")  # inkloop's drift snapshots


def snapshot_id(window_key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, window_key))


def _panels() -> list[DashboardPanelPlot]:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    def mean(column: str, legend: str) -> PanelMetric:
        return PanelMetric(metric="MeanValue", metric_labels={"column": column}, legend=legend)

    return [
        line_plot_panel(
            "Share of drifted columns",
            [PanelMetric(metric="DriftedColumnsCount", metric_labels={"value_type": "share"}, legend="share")],
            description="the window is drifted at the drift share (default 15%: 2 of 13 columns)",
            size="half",
        ),
        line_plot_panel("Mean confidence", [mean("confidence", "confidence")], size="half"),
        line_plot_panel(
            "Estimated vs audited CER",
            [mean("expected_cer", "estimated (no labels)"), mean("audited_cer", "audited pages")],
            description="apart for long: the confidence calibration has drifted",
            size="half",
        ),
        line_plot_panel("Refusal rate", [mean("rejected", "refused uploads")], size="half"),
    ]


def project(workspace: Workspace) -> Project:
    """The inkloop production project, created with its dashboard when missing; missing panels are added."""
    found = workspace.search_project(PROJECT)
    chosen = found[0] if found else workspace.create_project(PROJECT, description=DESCRIPTION)
    present = {panel.title for panel in chosen.dashboard.model().panels}
    for panel in _panels():
        if panel.title not in present:
            chosen.dashboard.add_panel(panel)
    return chosen


def save(folder: Path, snapshot: Snapshot, window_key: str, name: str) -> str:
    """Put `snapshot` into the workspace in `folder` under the id of its windows; its id."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(folder))
    target = project(workspace)
    sid = snapshot_id(window_key)
    snapshot.set_name(name)
    # Workspace.add_run always draws a new id; writing through its state with our own id is what makes a rerun
    # replace the point it added before.
    workspace.state.write_snapshot(target.id, sid, snapshot.to_snapshot_model())
    return sid


def snapshot_ids(folder: Path) -> list[str]:
    """The ids of the snapshots in the inkloop production project of the workspace in `folder` (none when there
    is no workspace yet)."""
    from evidently.ui.workspace import Workspace

    if not folder.is_dir():
        return []
    workspace = Workspace(str(folder))
    found = workspace.search_project(PROJECT)
    return [str(s) for s in workspace.list_runs(found[0].id)] if found else []
