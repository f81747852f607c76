"""Draw a Reply's chart to a PNG with matplotlib (no display needed)."""

from __future__ import annotations

from pathlib import Path

from crmbot.reply import Chart


def draw(chart: Chart, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    try:
        if chart.kind == "bar":
            ax.bar(chart.labels, chart.values, color="#4A7FB5")
            ax.tick_params(axis="x", labelrotation=30)
        else:
            ax.plot(chart.labels, chart.values, marker="o", color="#4A7FB5")
            ax.tick_params(axis="x", labelrotation=30)
        ax.set_title(chart.title)
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
