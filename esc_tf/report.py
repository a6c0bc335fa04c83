"""Run reports: ``report.json``, ``report.md``, ``curves.png`` and ``confusion.png``.

Accuracy is only ever computed on each fold's own test clips; the pooled confusion matrix
and per-class scores concatenate those test predictions over folds.
"""
from __future__ import annotations

import json
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, classification_report, confusion_matrix  # noqa: E402

from esc_tf.config import Config  # noqa: E402

if TYPE_CHECKING:
    from esc_tf.train import FoldResult

PACKAGES = ("tensorflow", "tf-keras", "tensorflow-io", "tensorflow-model-optimization", "numpy",
            "librosa", "pandas", "scikit-learn", "matplotlib", "tflite-micro", "cmsisdsp")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def summarize(results: list["FoldResult"], class_names: list[str]) -> dict[str, Any]:
    """Per-fold and mean ± std accuracy, pooled confusion matrix and per-class P/R/F1."""
    accs = np.array([r.accuracy for r in results])
    y_true = np.concatenate([r.y_true for r in results]).astype(int)
    y_pred = np.concatenate([r.y_pred for r in results]).astype(int)
    labels = list(range(len(class_names)))
    per_class = classification_report(y_true, y_pred, labels=labels, target_names=class_names,
                                      output_dict=True, zero_division=0)
    return {
        "folds": [{"name": r.name, "accuracy": r.accuracy, "test_clips": len(r.y_true),
                   "epochs": r.epochs_trained, "wall_seconds": r.wall_seconds} for r in results],
        "mean_accuracy": float(accs.mean()),
        "std_accuracy": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
        "pooled_accuracy": float((y_true == y_pred).mean()),
        "test_clips": int(len(y_true)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "per_class": {name: {k: float(per_class[name][k]) for k in ("precision", "recall", "f1-score", "support")}
                      for name in class_names},
        "class_names": class_names,
    }


def _markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"# Run report: {meta['run_dir']}", "",
             f"Command: `{meta['command']}`", "",
             f"Accuracy on held-out test folds: **{summary['mean_accuracy']:.4f} ± "
             f"{summary['std_accuracy']:.4f}** (mean ± sample std over {len(summary['folds'])} folds); "
             f"pooled over {summary['test_clips']} test clips: {summary['pooled_accuracy']:.4f}.", "",
             "| fold | test clips | accuracy | epochs | wall time (s) |", "|---|---|---|---|---|"]
    for f in summary["folds"]:
        lines.append(f"| {f['name']} | {f['test_clips']} | {f['accuracy']:.4f} | {f['epochs']} | "
                     f"{f['wall_seconds']:.0f} |")
    lines += ["", f"Wall time of this invocation: {meta['wall_seconds']:.0f} s; sum of fold times: "
              f"{sum(f['wall_seconds'] for f in summary['folds']):.0f} s.", "",
              "## Per-class scores (pooled test predictions)", "",
              "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, s in summary["per_class"].items():
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1-score']:.3f} | "
                     f"{int(s['support'])} |")
    lines += ["", "![training curves](curves.png)", "", "![confusion matrix](confusion.png)", "",
              "## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in meta["versions"].items()]
    lines += ["", "The effective configuration is in `config.yaml` and in `report.json`.", ""]
    return "\n".join(lines)


def plot_curves(results: list["FoldResult"], path: Path) -> None:
    """Training and validation loss and accuracy of every fold."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        for ax, key in zip(axes, ("loss", "accuracy")):
            line, = ax.plot(r.history.get(key, []), label=f"{r.name} train")
            ax.plot(r.history.get(f"val_{key}", []), "--", color=line.get_color(), label=f"{r.name} val")
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(summary: dict[str, Any], path: Path) -> None:
    """Pooled confusion matrix of the test predictions."""
    names = summary["class_names"]
    size = max(6.0, 0.28 * len(names))
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.array(summary["confusion_matrix"]), display_labels=names).plot(
        ax=ax, xticks_rotation=90, colorbar=False, include_values=len(names) <= 20)
    ax.set_title(f"pooled test folds, accuracy {summary['pooled_accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(run_dir: Path, results: list["FoldResult"], class_names: list[str], config: Config,
                 wall_seconds: float) -> dict[str, Any]:
    """Write report.json, report.md and the two PNGs into ``run_dir``; return the summary."""
    run_dir = Path(run_dir)
    summary = summarize(results, class_names)
    meta = {"run_dir": str(run_dir), "command": shlex.join(["python", "-m", "esc_tf.train", *sys.argv[1:]])
            if Path(sys.argv[0]).name == "train.py" else shlex.join(sys.argv),
            "wall_seconds": wall_seconds, "versions": package_versions()}
    payload = {**summary, **meta, "config": config.to_dict(),
               "histories": {r.name: r.history for r in results}}
    (run_dir / "report.json").write_text(json.dumps(payload, indent=1))
    (run_dir / "report.md").write_text(_markdown(summary, meta))
    plot_curves(results, run_dir / "curves.png")
    plot_confusion(summary, run_dir / "confusion.png")
    return summary
