"""Figures and the HTML page of an image benchmark: heat-map overlays, ROC curves, per-type tables.

The page is a :class:`~vigil.evaluation.report.Report`: self-contained, figures embedded as PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.evaluation.report import Report

__all__ = ["heatmap_overlay_figure", "overlay_png", "pick_examples", "write_image_report"]


def heatmap_overlay_figure(
    images: NDArray[Any],
    maps: NDArray[np.floating],
    *,
    titles: Sequence[str] | None = None,
    masks: NDArray[np.bool_] | None = None,
    vmax: float | None = None,
    columns: int = 6,
):
    """A grid of images, each with its anomaly map as a translucent heat map and its true mask outlined.

    Parameters
    ----------
    images : ndarray, shape (n, H, W) or (n, H, W, 3)
        ``uint8`` or floats in [0, 1].
    maps : ndarray, shape (n, H, W)
    titles : sequence of str, optional
    masks : ndarray of bool, shape (n, H, W), optional
        Ground truth, drawn as a green outline.
    vmax : float, optional
        Top of the colour scale, shared by all panels so that colours compare across images (default: the
        99th percentile of all maps).
    columns : int

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = heatmap_overlay_figure(np.zeros((2, 8, 8), np.uint8), np.random.default_rng(0).random((2, 8, 8)))
    >>> len(fig.axes)
    2
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    import matplotlib.pyplot as plt

    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.3 * rows), squeeze=False)
    top = float(np.percentile(maps, 99)) if vmax is None else float(vmax)
    top = top if top > 0 else 1.0
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= n:
            continue
        image = np.asarray(images[k])
        image = image / 255.0 if image.dtype == np.uint8 else image
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        ax.imshow(maps[k], cmap="jet", alpha=0.4, vmin=0.0, vmax=top)
        if masks is not None and masks[k].any():
            ax.contour(masks[k].astype(float), levels=[0.5], colors="lime", linewidths=0.8)
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)
    fig.tight_layout()
    return fig


def overlay_png(image: NDArray[Any], heat: NDArray[np.floating], *, threshold: float, title: str = "") -> bytes:
    """One image with its anomaly map over it, a colour bar and the threshold marked on it, as PNG bytes.

    The colour scale runs from 0 to twice ``threshold`` whatever the map holds, so that two images' colours
    compare and the threshold always sits half-way up the bar; values past the top show in its top colour
    (the bar's arrow). Drawn on a bare :class:`~matplotlib.figure.Figure` (no pyplot state), so that the
    service's worker threads can draw at the same time.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3)
        ``uint8`` or floats in [0, 1]: the frame as the model read it.
    heat : ndarray, shape (H, W)
        Its anomaly map, in the units of the image score.
    threshold : float
        The image score above which the detector flags an image (> 0).
    title : str
        Written above the image.

    Examples
    --------
    >>> png = overlay_png(np.zeros((8, 8), np.uint8), np.ones((8, 8)), threshold=0.5, title="part 7")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    image = np.asarray(image)
    image = image / 255.0 if image.dtype == np.uint8 else image
    top = 2.0 * float(threshold) if threshold > 0 else max(float(np.max(heat)), 1e-12)
    h, w = image.shape[:2]
    figure = Figure(figsize=(4.8, 4.2 * h / max(w, 1) + 0.5), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.set_axis_off()
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
    norm = Normalize(0.0, top)
    scale = ScalarMappable(norm=norm, cmap="jet")
    ax.imshow(heat, cmap=scale.cmap, norm=norm, alpha=0.45)
    if title:
        ax.set_title(title, fontsize=9)
    # The bar from its own mappable: opaque colours, not the translucent ones of the overlay.
    bar = figure.colorbar(scale, ax=ax, fraction=0.046, pad=0.04, extend="max")
    bar.set_label("anomaly map (image-score units)", fontsize=8)
    bar.ax.axhline(threshold, color="white", lw=2.5)
    bar.ax.axhline(threshold, color="black", lw=1.0)
    bar.set_ticks([0.0, threshold, top], labels=["0", f"threshold {threshold:.3g}", f"{top:.3g}"])
    bar.ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def pick_examples(
    scores: NDArray[np.floating], types: NDArray[np.str_], *, per_type: int = 2, false_alarms: int = 4
) -> list[tuple[int, str]]:
    """Indices worth showing: the most and least anomalous-looking image of each defect type (a hit and a miss),
    and the highest-scoring good images (the likeliest false alarms), each with a caption.

    Examples
    --------
    >>> pick_examples(np.array([0.1, 0.9, 0.5, 0.2]), np.array(["good", "hole", "hole", "good"]), false_alarms=1)
    [(1, 'hole: highest score'), (2, 'hole: lowest score'), (3, 'good: highest score')]
    """
    picks: list[tuple[int, str]] = []
    for kind in sorted(set(types.tolist()) - {"good"}):
        idx = np.flatnonzero(types == kind)
        order = idx[np.argsort(-scores[idx], kind="stable")]
        picks.append((int(order[0]), f"{kind}: highest score"))
        if per_type > 1 and len(order) > 1:
            picks.append((int(order[-1]), f"{kind}: lowest score"))
    good = np.flatnonzero(types == "good")
    for i in good[np.argsort(-scores[good], kind="stable")][:false_alarms]:
        picks.append((int(i), "good: highest score"))
    return picks


def _roc_figure(labels: NDArray[np.bool_], scores: NDArray[np.floating], types: NDArray[np.str_]):
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    good = types == "good"
    curves = [("all defects", labels)] + [(k, None) for k in sorted(set(types.tolist()) - {"good"})]
    for name, _ in curves:
        pick = np.ones_like(good) if name == "all defects" else good | (types == name)
        fpr, tpr, _ = roc_curve(labels[pick], scores[pick])
        ax.plot(fpr, tpr, lw=2.0 if name == "all defects" else 1.0, label=name)
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--")
    ax.set_xlabel("false-positive rate (good images flagged)")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_image_report(
    path: str | PathLike[str],
    result: Mapping[str, Any],
    *,
    images: NDArray[Any],
    scores: NDArray[np.floating],
    labels: NDArray[np.bool_],
    types: NDArray[np.str_],
    paths: NDArray[np.str_],
    maps: NDArray[np.floating] | None = None,
    masks: NDArray[np.bool_] | None = None,
) -> Path:
    """Write the HTML page of one image benchmark run: figures, per-type table and heat-map overlays."""

    def fmt(value: Any) -> str:
        return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"

    report = Report(
        f"{result['dataset']} · {result['detector']}",
        subtitle=f"split {result['split']}: {result.get('split_note', '')}",
    )
    report.kpis(
        [
            ("image ROC-AUC", fmt(result.get("roc_auc"))),
            ("pixel ROC-AUC", fmt(result.get("pixel_roc_auc"))),
            ("images/s (inference)", f"{result.get('images_per_second', float('nan')):.1f}"),
            ("fit seconds", f"{result.get('fit_seconds', float('nan')):.1f}"),
        ]
    )
    report.section("Per defect type", "Each type against the test good images.")
    rows = [
        [
            kind,
            int(result["n_test_per_type"].get(kind, 0)),
            fmt(auc),
            fmt(result.get("pixel_roc_auc_per_type", {}).get(kind)),
        ]
        for kind, auc in result["roc_auc_per_type"].items()
    ]
    report.table(["type", "test images", "image ROC-AUC", "pixel ROC-AUC"], rows)
    report.figure(_roc_figure(labels, scores, types), "ROC curves, overall and per defect type")
    if maps is not None:
        picks = pick_examples(scores, types)
        idx = np.asarray([i for i, _ in picks])
        titles = [f"{caption}\n{Path(str(paths[i])).name} · {scores[i]:.2f}" for i, caption in picks]
        fig = heatmap_overlay_figure(images[idx], maps[idx], titles=titles, masks=None if masks is None else masks[idx])
        report.section(
            "Anomaly maps",
            "Heat map of the detector's per-pixel anomaly map over the image (shared colour scale); green outline: "
            "the true defect mask. Per type, the highest- and lowest-scoring defect; last, the good test images "
            "that scored highest (the likeliest false alarms).",
        )
        report.figure(fig, "anomaly maps as heat-map overlays")
    report.section("Run")
    report.code("\n".join(f"{k}: {v}" for k, v in result.items() if not isinstance(v, dict)))
    return report.write(path)
