"""``progress.png``: one point per candidate in ledger order, the kept frontier as a step line, the baseline
with its noise band, and failures and literature-loop candidates marked where the eye finds them.
``curves.png``: the per-round validation of the baseline and the best kept candidate, mean and range over seeds.

Drawn with matplotlib's object API on an Agg canvas: no pyplot state, no display, no change to the user's
backend.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

# status -> (marker, face colour, edge colour, size, legend label)
_STYLE = {
    "keep": ("o", "#2ca02c", "#145214", 70, "keep"),
    "narrow": ("^", "none", "#e08a00", 55, "narrow (inconclusive)"),
    "discard": ("x", "#8c8c8c", "#8c8c8c", 40, "discard"),
}  # screened rows have no contract score: they are counted, not plotted
_FAILED = {"crash": ("X", "#d62728", "crash"), "invalid": ("s", "#9467bd", "invalid")}


def _baseline(ax: Any, facts: dict[str, Any]) -> None:
    base, noise = facts["baseline"], facts["noise"]["sd"]
    if base is not None and base["score"] is not None:
        if noise:
            ax.axhspan(
                base["score"] - noise,
                base["score"] + noise,
                color="#9ecae1",
                alpha=0.35,
                lw=0,
                label=f"baseline ± noise floor (sd {noise:.3f})",
            )
        ax.axhline(base["score"], color="#3182bd", ls="--", lw=1, label=f"baseline {base['score']:.3f}")


def _points(ax: Any, frame: pd.DataFrame, facts: dict[str, Any], x: list[int]) -> None:
    """Each row as a marker by verdict; failed rows on the bottom edge; literature rows as lines."""
    score, statuses = frame["score"].tolist(), frame["status"].astype(str).tolist()
    for status, (marker, face, edge, size, label) in _STYLE.items():
        pts = [(xi, s) for xi, s, st in zip(x, score, statuses, strict=True) if st == status]
        if pts:
            ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker=marker,
                s=size,
                c=face,
                edgecolors=None if marker == "x" else edge,  # an unfilled marker takes the face colour
                linewidths=1.5,
                zorder=3,
                label=f"{label} ({len(pts)})",
            )
    # Failed rows have no score: mark them on the bottom edge so they are seen but never read as a value.
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for status, (marker, colour, label) in _FAILED.items():
        xs = [xi for xi, st in zip(x, statuses, strict=True) if st == status]
        if xs:
            ax.scatter(
                xs,
                [0.02] * len(xs),
                marker=marker,
                s=60,
                c=colour,
                transform=bottom,
                zorder=4,
                clip_on=False,
                label=f"{label} ({len(xs)}), no score",
            )
    _literature(ax, frame, facts, x)


def _literature(ax: Any, frame: pd.DataFrame, facts: dict[str, Any], x: list[int]) -> None:
    """A review as a dotted line named by its event id; the candidates it proposed ringed in its colour."""
    at = dict(zip(frame["line"], x, strict=True))
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for i, event in enumerate(facts["literature_events"]):
        xi = at[event["line"]]
        ax.axvline(xi, color="#6a51a3", ls=":", lw=1.5, label="literature review" if i == 0 else None)
        ax.text(xi, 0.99, f" {event['event']}", transform=top, va="top", fontsize=8, color="#6a51a3")
        ringed = [(at[r["line"]], r["score"]) for r in event["linked"] if r["score"] is not None]
        if ringed:
            ax.scatter(
                [p[0] for p in ringed],
                [p[1] for p in ringed],
                s=190,
                facecolors="none",
                edgecolors="#6a51a3",
                linewidths=1.2,
                zorder=2,
                label="proposed by a review" if i == 0 else None,
            )


def _best(ax: Any, facts: dict[str, Any]) -> None:
    best, base = facts["best"], facts["baseline"]
    if (
        best is not None
        and best["score"] is not None
        and base is not None
        and best["row_id"] != base["row_id"]
    ):
        bx = 1 + [p["row_id"] for p in facts["progress"]].index(best["row_id"])
        gain = best["gain_vs_baseline"]
        ax.annotate(
            f"best: {best['candidate_id']}\n{best['description'][:60]}\n{gain:+.3f} vs baseline",
            xy=(bx, best["score"]),
            xytext=(0.02, 0.97),
            textcoords="axes fraction",
            va="top",
            fontsize=8,
            arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 0.8},
            bbox={"boxstyle": "round", "fc": "white", "ec": "#bbbbbb"},
        )


def plot_progress(frame: pd.DataFrame, facts: dict[str, Any]) -> bytes:
    """The PNG bytes for the rows of one contract (``analysis.one_contract``) and their report facts."""
    fig = Figure(figsize=(12, 5.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = list(range(1, len(frame) + 1))
    _baseline(ax, facts)
    front = [p["frontier"] for p in facts["progress"]]
    ax.step(x, front, where="post", color="#2ca02c", lw=2, label="kept frontier (incumbent)")
    _points(ax, frame, facts, x)
    _best(ax, facts)
    m = facts["metric"]
    ax.set_xlabel("candidate (ledger order)")
    ax.set_ylabel(f"{m['name']} (mean over seeds)" + ("" if m["higher_is_better"] else ", lower is better"))
    ax.set_xlim(0.5, len(x) + 0.5)
    if len(x) <= 30:
        ax.set_xticks(x)
    counts = ", ".join(f"{v} {k}" for k, v in facts["verdicts"].items() if v)
    ax.set_title(
        f"{facts['benchmark']}: {len(x)} ledger rows ({counts})   contract {facts['contract_sha'][:12]}",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)  # never over a point
    return _png(fig)


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_curves(facts: dict[str, Any]) -> bytes | None:
    """The PNG bytes of the per-round curves (None: no row of the two has any)."""
    from pytest_autofl.report.markdown import has_curves

    if not has_curves(facts):
        return None
    fig = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    base, best = facts["baseline"], facts["best"]
    shown = [("baseline", "#3182bd", base)]
    if best is not None and (base is None or best["row_id"] != base["row_id"]):
        shown.append(("best", "#2ca02c", best))
    for name, colour, row in shown:
        seeds = list(facts["curves"][name].values())
        rounds = max((len(c) for c in seeds), default=0)
        x, mean, low, high = [], [], [], []
        for step in range(rounds):
            values = [v for c in seeds if step < len(c) and (v := c[step]) is not None]
            if values:
                x.append(step)
                mean.append(sum(values) / len(values))
                low.append(min(values))
                high.append(max(values))
        label = f"{name} {row['candidate_id']} ({len(seeds)} seeds)"
        ax.plot(x, mean, color=colour, lw=2, marker="o", ms=4, label=label)
        ax.fill_between(x, low, high, color=colour, alpha=0.2, lw=0)
    m = facts["metric"]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round (0 = the untrained start)")
    ax.set_ylabel(f"{m['name']}: mean, range over seeds")
    ax.set_title(f"{facts['benchmark']}: per-round validation, baseline vs best kept", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)
