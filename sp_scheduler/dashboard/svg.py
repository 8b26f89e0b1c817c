"""A small inline SVG of a job's run durations and lateness over time, drawn on the server (no JS charting)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from sp_scheduler.store import RunRecord

WIDTH, HEIGHT, PAD = 640, 160, 28


def _points(values: Sequence[tuple[float, float]], t0: float, t1: float, top: float) -> str:
    span = (t1 - t0) or 1.0
    scale = top or 1.0
    return " ".join(
        f"{PAD + (t - t0) / span * (WIDTH - 2 * PAD):.1f},{HEIGHT - PAD - v / scale * (HEIGHT - 2 * PAD):.1f}"
        for t, v in values
    )


def runs_plot(records: Sequence[RunRecord]) -> str:
    """Duration (solid) and lateness (dashed) in milliseconds against the run's creation time, oldest left."""
    durations = [(r.created_at.timestamp(), float(r.duration_ms)) for r in records if r.duration_ms is not None]
    lateness = [(r.created_at.timestamp(), float(max(r.lateness_ms, 0))) for r in records if r.lateness_ms is not None]
    if not durations and not lateness:
        return ""
    stamps = [t for t, _ in durations + lateness]
    t0, t1 = min(stamps), max(stamps)
    top = max(v for _, v in durations + lateness)
    lines = [
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img"'
        f' aria-label="run duration and lateness">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
        f'<text x="{PAD + 4}" y="{PAD - 8}" class="label">max {escape(f"{top:.0f}")} ms</text>',
    ]
    for name, values in (("duration", sorted(durations)), ("lateness", sorted(lateness))):
        if values:
            lines.append(f'<polyline class="{name}" fill="none" points="{_points(values, t0, t1, top)}"/>')
    lines.append(
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" class="label" text-anchor="end">'
        '<tspan class="duration-key">duration</tspan> <tspan class="lateness-key">lateness</tspan></text>'
    )
    lines.append("</svg>")
    return "".join(lines)
