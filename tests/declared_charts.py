"""The charts dvc.yaml's top-level `plots:` declares, read straight from the file: what the render and report
tests expect to find, so that a chart added to dvc.yaml is checked without editing a test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Chart:
    """One top-level plot definition.

    Attributes:
        title: the plot id, which DVC also uses as the chart's title.
        x: the x column.
        x_label, y_label: the axis titles.
        series: the y columns (each file's, in order): the legend's series names.
        template: the Vega-Lite template's name (``.dvc/plots/<template>.json``).
        files: the plot data files.
    """

    title: str
    x: str
    x_label: str
    y_label: str
    series: tuple[str, ...]
    template: str
    files: tuple[str, ...]


def declared_charts(dvc_yaml: Path = TEMPLATE_ROOT / "dvc.yaml") -> list[Chart]:
    """Every chart of ``dvc_yaml``'s `plots:`, in order; a key the definition lacks reads as an empty string."""
    charts = []
    for entry in yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["plots"]:
        ((title, definition),) = entry.items()
        columns = definition["y"]
        series = tuple(column for value in columns.values() for column in ([value] if isinstance(value, str) else value))
        charts.append(Chart(title, definition.get("x", ""), definition.get("x_label", ""), definition.get("y_label", ""),
                            series, definition.get("template", ""), tuple(columns)))
    return charts
