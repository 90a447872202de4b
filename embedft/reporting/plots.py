"""The report's plots section: DVC's plot data of both revisions as a Mermaid chart and a table per chart.

The data comes from ``dvc plots diff <rev> --json --split`` (DVC 3.67, dvc-render 1.0; the workflow pins that
version). Per chart DVC gives its rows (one per point, with ``rev`` and the x value) and, in
``anchor_definitions``, the title and axis titles; what names a row's line depends on the template and the
chart's y files (see :data:`SERIES_KEYS`), so the parser tries each form rather than assuming one.

A chart is drawn inline as a Mermaid ``xychart-beta`` block, which GitHub renders in comments. Mermaid's xychart
draws no legend before version 11, so the report sets the line colours itself and writes the legend below the
chart with coloured squares; the base revision's lines are paler versions of the same colours, drawn first so
that the current ones lie on top.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MAX_PLOT_COLUMNS = 8
"""x values per plot table; longer curves are sampled evenly, keeping first, last and the headline cut-offs."""
MAX_CHART_POINTS = 24
"""x values per Mermaid chart (its x axis is one label per value), sampled like the table's."""
SERIES_KEYS = ("field", "filename::field", "filename")
"""Row keys that name a line, in the order tried. DVC keys a row by its y column (``field``); with a built-in
template it keys it by ``filename::field`` when a chart's y spans several files with different columns, by
``filename`` when only the file differs, and by nothing for a single column (the line is then the y column)."""
INFERRED_Y = "dvc_inferred_y_value"
"""Where DVC puts a row's y value when the chart has several y columns."""
COLOURS = (("🟦", "#1f77b4"), ("🟧", "#ff7f0e"), ("🟩", "#2ca02c"), ("🟥", "#d62728"), ("🟪", "#9467bd"),
           ("🟫", "#8c564b"), ("🟨", "#e6b800"), ("⬛", "#333333"))
"""Line colours of the Mermaid charts, each with the coloured square that stands for it in the legend."""


@dataclass
class PlotSeries:
    """One line of one plot at one revision: y values by x value (both as DVC read them from the file)."""

    plot: str
    x_field: str
    series: str
    revision: str
    points: dict[str, float] = field(default_factory=dict)


@dataclass
class ChartInfo:
    """A chart's titles as DVC filled them in from dvc.yaml (the plot id, ``x_label``, ``y_label``)."""

    title: str
    x_label: str
    y_label: str


@dataclass
class PlotData:
    """Everything the plots section shows: the lines, each chart's titles, the charts dvc.yaml declares (in
    order), DVC's errors (e.g. a column the base revision lacks) and the x values always shown, by x column."""

    series: list[PlotSeries] = field(default_factory=list)
    charts: dict[str, ChartInfo] = field(default_factory=dict)
    declared: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pinned: dict[str, list[str]] = field(default_factory=dict)


def declared_plots(dvc_yaml: Path) -> list[str]:
    """The ids of the top-level `plots:` in ``dvc_yaml`` (a file path, or the key of a definition), in order."""
    if not dvc_yaml.is_file():
        return []
    entries = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("plots") or []
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]


def encoding_field(spec: object, channel: str) -> str | None:
    """The field of the first ``channel`` encoding in a Vega-Lite spec, layers included, without DVC's escapes."""
    if isinstance(spec, list):
        return next((found for item in spec if (found := encoding_field(item, channel))), None)
    if not isinstance(spec, dict):
        return None
    own = spec.get("encoding", {}).get(channel, {}) if isinstance(spec.get("encoding"), dict) else {}
    if isinstance(own, dict) and isinstance(own.get("field"), str):
        return re.sub(r"\\([.\[\]])", r"\1", own["field"])  # DVC escapes . [ ] in field names for Vega
    return next((found for value in spec.values() if (found := encoding_field(value, channel))), None)


def row_line(row: dict, y_field: str | None) -> tuple[str, object] | None:
    """(line name, y value) of one data row; None when nothing names the line."""
    name = next((str(row[key]) for key in SERIES_KEYS if key in row), y_field)
    if name is None:
        return None
    column = name.rsplit("::", 1)[-1] if "filename::field" in row else row.get("field", y_field)
    for key in (INFERRED_Y, y_field, column):
        if key is not None and key in row:
            return name, row[key]
    return None


def renderer_series(plot: str, renderer: dict) -> list[PlotSeries]:
    """The lines of one rendered chart of ``dvc plots diff --json --split``."""
    content = renderer.get("content", {})
    x_field, y_field = encoding_field(content, "x"), encoding_field(content, "y")
    lines: dict[tuple[str, str], PlotSeries] = {}
    for row in renderer.get("anchor_definitions", {}).get("<DVC_METRIC_DATA>", []):
        line = row_line(row, y_field)
        if line is None or x_field not in row:
            continue
        try:
            y = float(line[1])
        except (TypeError, ValueError):  # a missing or non-numeric cell draws nothing in DVC's chart either
            continue
        key = (line[0], str(row.get("rev")))
        lines.setdefault(key, PlotSeries(plot, x_field, *key)).points[str(row[x_field])] = y
    return list(lines.values())


def plot_series(plots_json: dict) -> list[PlotSeries]:
    """The lines of every chart in ``dvc plots diff --json --split`` output, per chart, line and revision."""
    return [series for plot, renderers in plots_json.get("data", {}).items() for renderer in renderers
            for series in renderer_series(plot, renderer)]


def chart_infos(plots_json: dict) -> dict[str, ChartInfo]:
    """Each chart's title and axis titles (DVC's defaults where dvc.yaml sets none: the column names, or "y")."""
    infos = {}
    for plot, renderers in plots_json.get("data", {}).items():
        for renderer in renderers:
            anchors = renderer.get("anchor_definitions", {})
            infos[plot] = ChartInfo(str(anchors.get("<DVC_METRIC_TITLE>") or plot), str(anchors.get("<DVC_METRIC_X_LABEL>", "")),
                                    str(anchors.get("<DVC_METRIC_Y_LABEL>", "")))
    return infos


def plot_errors(plots_json: dict) -> list[str]:
    """DVC's plot errors as lines: chart, revision and message (e.g. a y column a revision's file lacks)."""
    return [f"`{error.get('name', '?')}` at `{error.get('rev', '?')}`: {error.get('msg') or error.get('type', 'error')}"
            for error in plots_json.get("errors", []) or []]


def sampled(xs: list[str], keep: int, pinned: tuple[str, ...] | list[str] = ()) -> list[str]:
    """At most ``keep`` of ``xs`` (more only if ``pinned`` needs it), evenly spaced; the first, the last and every
    pinned value present in ``xs`` are always among them, in the order of ``xs``."""
    if len(xs) <= keep:
        return xs
    required = {0, len(xs) - 1} | {i for i, x in enumerate(xs) if x in pinned}
    chosen = {round(i * (len(xs) - 1) / (keep - 1)) for i in range(keep)}
    for index in sorted(required - chosen):
        movable = chosen - required
        if len(chosen) >= keep and movable:  # give up the evenly spaced value nearest to the required one
            chosen.remove(min(movable, key=lambda i: (abs(i - index), i)))
        chosen.add(index)
    return [xs[i] for i in sorted(chosen)]


def numeric_first(value: str) -> tuple[int, float, str]:
    """Sort key: numbers in numeric order, then anything else alphabetically."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def number(value: object) -> str:
    """A metric or param for a table cell: 4 significant digits for floats, anything else as written."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def change(old: object, new: object) -> str:
    """new − old with its sign when both are numbers (booleans are not), else an em dash."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    if not numeric:
        return "—"
    return f"{new - old:+.4g}" if new != old else "0"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; pipes inside cells are escaped."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return [line(header), "|" + "---|" * len(header), *map(line, rows)]


def mermaid_number(value: float) -> str:
    """A y value as Mermaid's xychart reads it: plain decimal (no exponent), 4 significant digits."""
    if value == 0 or not math.isfinite(value):
        return "0"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{value:.0f}"


def mermaid_text(text: str) -> str:
    """A title or label as a Mermaid quoted string (a double quote would end it)."""
    return '"' + text.replace('"', "'") + '"'


def pale(colour: str) -> str:
    """``colour`` (#rrggbb) mixed half and half with white: the base revision's line."""
    channels = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{(c + 255) // 2:02x}" for c in channels)


def chart_lines(xs: list[str], new: dict[str, dict[str, float]], old: dict[str, dict[str, float]]) -> list[tuple[str, bool, list[float]]]:
    """(series, is the base revision, y at each x) of every line the chart draws, base revision first so that the
    current lines lie on top. A line needs a value at every x (Mermaid draws no gaps); a base line equal to the
    current one is left out, as it would only hide it."""
    def values(points: dict[str, float]) -> list[float] | None:
        return [points[x] for x in xs] if all(x in points for x in xs) else None

    current = {name: ys for name, points in new.items() if (ys := values(points)) is not None}
    base = {name: ys for name, points in old.items() if (ys := values(points)) is not None and ys != current.get(name)}
    return [*((name, True, ys) for name, ys in base.items()), *((name, False, ys) for name, ys in current.items())]


def mermaid_chart(info: ChartInfo, xs: list[str], new: dict[str, dict[str, float]], old: dict[str, dict[str, float]],
                  against: str) -> list[str]:
    """The chart as a Mermaid xychart block, with the legend GitHub cannot draw written below it."""
    lines = chart_lines(xs, new, old)
    if not lines:
        return []
    names = list(dict.fromkeys([*new, *(name for name, _, _ in lines)]))  # colours in the current revision's order
    colour = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
    palette = [pale(colour[name][1]) if is_base else colour[name][1] for name, is_base, _ in lines]
    block = ["```mermaid", '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + ", ".join(palette) + '"}}}}%%',
             "xychart-beta", f"    title {mermaid_text(info.title)}",
             f"    x-axis {mermaid_text(info.x_label)} [{', '.join(mermaid_text(x) for x in xs)}]",
             f"    y-axis {mermaid_text(info.y_label)}"]
    block += [f"    line {mermaid_text(f'{name} ({against})' if is_base else name)} [{', '.join(mermaid_number(y) for y in ys)}]"
              for name, is_base, ys in lines]  # named for the Mermaid versions that draw a legend
    legend = " · ".join(f"{colour[name][0]} {name}" for name in names)
    if any(is_base for _, is_base, _ in lines):
        legend += f"; paler lines: `{against}`"
    return [*block, "```", "", legend, ""]


def value_table(xs: list[str], x_field: str, new: dict[str, dict[str, float]], old: dict[str, dict[str, float]]) -> tuple[list[str], bool]:
    """The table of one chart (a row per line, a column per x: the current value, its change in brackets) and
    whether anything differs from the base revision."""
    rows, changed = [], False
    for name in new or old:
        cells = []
        for x in xs:
            before, after = old.get(name, {}).get(x), new.get(name, {}).get(x)
            moved = before is not None and after is not None and before != after
            changed |= moved or (before is None) != (after is None)
            cells.append(f"{number(after)} ({change(before, after)})" if moved else number(after))
        rows.append([name, *cells])
    return table([f"{x_field} →", *xs], rows), changed


def chart_section(plot: str, all_series: list[PlotSeries], plots: PlotData, against: str, label: str) -> list[str]:
    """One chart: its heading, the Mermaid chart of both revisions, and the table of its sampled x values."""
    new_revision = next((s.revision for s in all_series if s.revision != against), None)
    new = {s.series: s.points for s in all_series if s.revision == new_revision}
    old = {s.series: s.points for s in all_series if s.revision == against}
    x_field = all_series[0].x_field
    xs = sorted({x for points in (new or old).values() for x in points}, key=numeric_first)
    pinned = plots.pinned.get(x_field, [])
    info = plots.charts.get(plot) or ChartInfo(plot, x_field, "")
    rows, changed = value_table(sampled(xs, MAX_PLOT_COLUMNS, pinned), x_field, new, old)
    caption = f"change from {against} in brackets" if changed else f"unchanged from {against}"
    side = label if new else against
    return [f"**{plot}**: {side} ({caption})", "", *mermaid_chart(info, sampled(xs, MAX_CHART_POINTS, pinned), new, old, against),
            *rows, ""]


def plots_section(plots: PlotData, against: str, label: str, plots_url: str | None) -> list[str]:
    """Every chart dvc.yaml declares (then any other DVC drew), each as a Mermaid chart and a table; a chart
    without data at either revision says so."""
    lines = ["### Plots", ""]
    if plots_url:
        lines += [f"Interactive charts of both revisions (`dvc plots diff {against}`): {plots_url}", ""]
    by_plot: dict[str, list[PlotSeries]] = {}
    for series in plots.series:
        by_plot.setdefault(series.plot, []).append(series)
    for plot in dict.fromkeys([*plots.declared, *by_plot]):
        if plot in by_plot:
            lines += chart_section(plot, by_plot[plot], plots, against, label)
        else:
            lines += [f"**{plot}**: no data at either revision.", ""]
    if not by_plot and not plots.declared:
        lines += ["No plot data.", ""]
    if plots.errors:
        lines += ["DVC could not draw:", "", *(f"- {error}" for error in plots.errors), ""]
    return lines
