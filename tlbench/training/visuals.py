"""Pictures of a classifier: confusion matrix, per-class accuracy and labelled image grids.

Pure functions from numbers/tensors to matplotlib Figures (object API on an Agg canvas, no
pyplot: no display, no global figure state, safe inside a sweep), plus `to_array` for TensorBoard
and `save_png` for the run dir. `tlbench.training.callbacks.ImageSummaries` decides when to draw.
Figures are small on purpose (a few hundred pixels a side), so they are cheap to render.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.patches import Rectangle

from tlbench import atomic
from tlbench.training import metrics

ANNOTATE_UP_TO = 12  # numbers inside the confusion-matrix cells while they stay legible
TICKS_UP_TO = 40  # class names along the axes while they stay legible
BARS_UP_TO = 30  # per-class accuracy bars; beyond this the worst classes are shown
DPI = 80


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


# -- numbers ---------------------------------------------------------------------------------
def confusion_counts(preds, targets, num_classes: int) -> np.ndarray:
    """(true, predicted) counts, shape (k, k): tlbench.training.metrics' definition."""
    return metrics.confusion_matrix(preds, targets, num_classes)


def normalise_rows(cm: np.ndarray) -> np.ndarray:
    """Each true class sums to 1 (the diagonal is per-class recall); empty rows stay 0."""
    rows = cm.sum(1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Fraction of each true class predicted correctly (recall); NaN for a class with no samples."""
    return metrics.recall_per_class(cm)


def denormalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo `Normalize(mean, std)`: float images in [0, 1], (N, C, H, W)."""
    x = x.detach().float().cpu()
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x * s + m).clamp(0, 1)


# -- figures ---------------------------------------------------------------------------------
def _text_inches(labels: Sequence[str], font: float) -> float:
    """Rough width of the longest label: fixed margins instead of constrained layout, which
    would double the rendering time."""
    return max((len(t) for t in labels), default=1) * font * 0.62 / 72


def _axes(fig, left: float, bottom: float, right: float, top: float):
    """An axes with margins in inches."""
    w, h = fig.get_figwidth(), fig.get_figheight()
    return fig.add_axes((left / w, bottom / h, 1 - (left + right) / w, 1 - (bottom + top) / h))


def confusion_figure(cm: np.ndarray, class_names: Sequence[str], title: str):
    """Row-normalised confusion matrix with class names (true rows, predicted columns)."""
    k = len(cm)
    norm = normalise_rows(cm)
    side = min(2.6 + 0.25 * k, 8.0)  # the matrix itself, inches
    ticks = k <= TICKS_UP_TO
    font = 7 if k <= 15 else 5
    names = [str(n)[:14] for n in class_names]
    margin = 0.35 + (_text_inches(names, font) if ticks else 0.0)
    fig = _figure(side + margin + 0.75, side + margin + 0.3, layout=None)
    ax = _axes(fig, margin, margin, 0.75, 0.3)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    cax = fig.add_axes(
        (
            1 - 0.6 / fig.get_figwidth(),
            ax.get_position().y0,
            0.12 / fig.get_figwidth(),
            ax.get_position().height,
        )
    )
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=6)
    if ticks:
        ax.set_xticks(range(k), labels=names, rotation=90, fontsize=font)
        ax.set_yticks(range(k), labels=names, fontsize=font)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=8)
    if k <= ANNOTATE_UP_TO:
        for i, j in zip(*np.nonzero(cm), strict=True):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}"[1:] if norm[i, j] < 1 else "1",  # ".93": fits the cell
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    return fig


def per_class_figure(acc: np.ndarray, class_names: Sequence[str], title: str):
    """Horizontal bars of per-class accuracy; with many classes only the worst BARS_UP_TO."""
    idx = np.arange(len(acc))
    if len(acc) > BARS_UP_TO:
        idx = np.argsort(np.nan_to_num(acc, nan=2.0), kind="stable")[:BARS_UP_TO]
        title = f"{title} (worst {BARS_UP_TO} of {len(acc)})"
    names = [str(class_names[i])[:18] for i in idx]
    left = 0.2 + _text_inches(names, 7)
    fig = _figure(3.0 + left, min(0.75 + 0.16 * len(idx), 6.0), layout=None)
    ax = _axes(fig, left, 0.4, 0.15, 0.25)
    values = np.nan_to_num(acc[idx], nan=0.0)
    ax.barh(range(len(idx)), values, color=["#c44e52" if v < 0.5 else "#4c72b0" for v in values])
    ax.set_yticks(range(len(idx)), labels=names, fontsize=7)
    ax.set_ylim(len(idx) - 0.5, -0.5)  # first class on top, as read
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy", fontsize=7, labelpad=1)
    ax.tick_params(axis="x", labelsize=6, pad=1)
    ax.set_title(title, fontsize=8)
    return fig


def grid_figure(
    images: torch.Tensor,
    targets: Sequence[int],
    class_names: Sequence[str],
    title: str,
    preds: Sequence[int] | None = None,
    columns: int = 4,
):
    """Labelled image grid. With `preds`: "pred / true" above wrong images, in red, with a red
    frame. `images` are float (N, C, H, W) in [0, 1] (see `denormalise`). One mosaic in one axes:
    a subplot per image would cost ~10x the rendering time."""
    n, c, h, w = images.shape
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    pad = max(2, w // 16)  # pixels between tiles
    label = max(5, round(0.2 * h))  # pixels above each tile for its label (~0.2 in)
    cell_w, cell_h = w + pad, h + pad + label
    mosaic = np.ones((rows * cell_h + pad, cols * cell_w + pad, 3), dtype=np.float32)
    rgb = images.expand(n, 3, h, w) if c == 1 else images[:, :3]
    rgb = rgb.permute(0, 2, 3, 1).numpy()
    fig = _figure(1.1 * cols, 1.1 * rows * cell_h / cell_w + 0.25, layout=None)
    ax = fig.add_axes((0, 0, 1, 1 - 0.25 / fig.get_figheight()))
    fig.suptitle(title, fontsize=8, y=0.995, va="top")
    font = 6.5 if cols >= 4 else 7.5
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = r * cell_h + pad + label, q * cell_w + pad
        mosaic[top : top + h, left : left + w] = rgb[i]
        true = str(class_names[int(targets[i])])[:12]
        wrong = preds is not None and int(preds[i]) != int(targets[i])
        text = f"{str(class_names[int(preds[i])])[:12]} / {true}" if wrong else true
        ax.annotate(
            text,
            (left + w / 2, top - 0.5),
            xytext=(0, 2.5),  # points: clear of the red frame at any image size
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=font,
            color="#c00000" if wrong else "black",
        )
        if wrong:
            ax.add_patch(
                Rectangle((left - 1, top - 1), w + 1, h + 1, fill=False, ec="#c00000", lw=2)
            )
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    return fig


# -- output ----------------------------------------------------------------------------------
def to_array(fig) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a rendered figure, for SummaryWriter.add_image(dataformats='HWC')."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_png(fig, path: str | Path) -> Path:
    """Write atomically (tmp + rename), so a reader never sees half an image."""
    with atomic.replacing(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI * 1.5)
    return Path(path)
