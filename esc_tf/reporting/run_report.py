"""Run reports: ``report.json``, ``report.md``, ``curves.png`` and ``confusion.png``.

Accuracy is only ever computed on each fold's own test clips; the pooled confusion matrix
and per-class scores concatenate those test predictions over folds.
"""
from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from esc_tf.artifacts import (
    DEPLOY_DIR,
    META_FILE,
    MODEL_FILE,
    REPORT_FILE,
    RESULT_FILE,
    ModelError,
    ModelMeta,
    invocation,
    load_fold_result,
    package_versions,
    read_report,
    record_command,
    relative_path,
    write_json_atomic,
    write_text_atomic,
)
from esc_tf.config import Config, ExportConfig, load_config
from esc_tf.models import transfer
from esc_tf.reporting import plots as viz
from esc_tf.reporting.plots import EDGE_VARIANTS
from esc_tf.stages.export import budget_excess

if TYPE_CHECKING:
    from esc_tf.artifacts import FoldResult

def write_benchmark_table(path: Path, title: str, table: str, argv: list[str] | None = None) -> None:
    """Write a benchmark's markdown ``table`` to ``path`` under ``title`` and the command that made it
    (``argv``: the arguments its ``main`` was given, when not this process's own)."""
    command = invocation() if argv is None else shlex.join(["python", sys.argv[0], *argv])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, f"# {title}\n\n`{command}`\n\n{table}\n")


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


EDGE_SIZES = ("params", "macs", "float_tflite_bytes", "float_tflite_gzip_bytes", "int8_unpruned_bytes",
              "int8_unpruned_gzip_bytes", "int8_bytes", "int8_gzip_bytes", "tflm_arena_bytes")


def summarize_edge(edge: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fold and pooled accuracy of every runtime variant, agreement, and sizes."""
    y_true = np.concatenate([e["y_true"] for e in edge])
    variants = {}
    for key in EDGE_VARIANTS:
        if not all(key in e["variants"] for e in edge):
            continue
        folds = [e["variants"][key]["accuracy"] for e in edge]
        pooled = np.concatenate([e["variants"][key]["y_pred"] for e in edge])
        variants[key] = {"per_fold": folds, "mean": float(np.mean(folds)),
                         "std": float(np.std(folds, ddof=1)) if len(folds) > 1 else 0.0,
                         "pooled": float(np.mean(pooled == y_true))}
    agreement = {k: float(np.average([e["agreement"][k] for e in edge], weights=[e["test_clips"] for e in edge]))
                 for k in edge[0]["agreement"]}
    sizes = {k: float(np.mean([e["sizes"][k] for e in edge])) for k in EDGE_SIZES}
    sizes["inferences_per_clip"] = float(np.mean([e["sizes"].get("inferences_per_clip", 1) for e in edge]))
    return {"folds": [e["name"] for e in edge], "variants": variants, "agreement_pooled": agreement,
            "sizes_mean_over_folds": sizes,
            "kernel_sparsity": float(np.mean([e["kernel_sparsity"] for e in edge])),
            "calibration_clips": [e["calibration_clips"] for e in edge]}


def over_budget(edge: list[dict[str, Any]], export: ExportConfig) -> list[str]:
    """What of the fold models' largest int8 file and arena exceeds the export budgets (a run trained with
    ``export.deploy=false`` is not refused, so its report says it)."""
    return budget_excess(max(int(e["sizes"]["int8_bytes"]) for e in edge),
                         max(int(e["sizes"]["tflm_arena_bytes"]) for e in edge), export)


def _edge_markdown(edge: dict[str, Any], deploy: dict[str, Any] | None) -> list[str]:
    v = edge["variants"]
    pruned = edge["kernel_sparsity"] > 0
    lines = [f"## Float vs int8 vs TFLM (each fold's model {'pruned, ' if pruned else ''}quantised and scored on its "
             "own test fold)", "",
             "| variant | " + " | ".join(edge["folds"]) + " | mean ± std | pooled |",
             "|---|" + "---|" * (len(edge["folds"]) + 2)]
    for key, label in EDGE_VARIANTS.items():
        if key in v:
            lines.append(f"| {label} | " + " | ".join(f"{a:.4f}" for a in v[key]["per_fold"])
                         + f" | {v[key]['mean']:.4f} ± {v[key]['std']:.4f} | {v[key]['pooled']:.4f} |")
    a = edge["agreement_pooled"]
    sz = edge["sizes_mean_over_folds"]
    drop = v["keras_float"]["pooled"] - v["int8_tflm"]["pooled"]
    lines += ["", f"int8 (TFLM) costs **{100 * drop:+.2f} pp** of pooled accuracy against the Keras float model "
              f"(negative: int8 scored higher). Top-1 agreement: Keras float vs int8 TFLM "
              f"{a['keras_float_vs_int8_tflm']:.4f}; pruned float vs int8 TFLM {a['pruned_float_vs_int8_tflm']:.4f}; "
              f"int8 LiteRT vs int8 TFLM {a['int8_litert_vs_int8_tflm']:.4f}.", "",
              f"Footprint (mean over folds): {int(sz['params'])} parameters, {int(sz['macs'])} MACs per inference"
              + (f" ({int(sz['inferences_per_clip'])} inferences per clip)" if sz.get("inferences_per_clip", 1) > 1
                 else "") + "; "
              f"float .tflite {int(sz['float_tflite_bytes'])} B; int8 .tflite {int(sz['int8_bytes'])} B; "
              f"TFLM arena {int(sz['tflm_arena_bytes'])} B (measured minimum)."
              + "".join(f" **Not deployable: {o}.**" for o in edge.get("over_budget", [])), "",
              "Pruning was off (`prune.enabled: false`): the rows named pruned hold the same model as the unpruned "
              "ones." if not pruned else
              "What pruning bought (kernel sparsity "
              f"{edge['kernel_sparsity']:.2f}): the dense int8 .tflite does not shrink "
              f"({int(sz['int8_unpruned_bytes'])} B unpruned vs {int(sz['int8_bytes'])} B pruned), its gzip "
              f"size for an over-the-air update does ({int(sz['int8_unpruned_gzip_bytes'])} B vs "
              f"{int(sz['int8_gzip_bytes'])} B, {100 * (1 - sz['int8_gzip_bytes'] / sz['int8_unpruned_gzip_bytes']):.1f} % "
              f"smaller), at an accuracy cost of {100 * (v['int8_unpruned_litert']['pooled'] - v['int8_litert']['pooled']):+.2f} pp "
              "(int8 unpruned vs int8 pruned, LiteRT, pooled)." if "int8_unpruned_litert" in v else "",
              "", "![float vs int8](edge.png)", ""]
    if deploy:
        lines += ["## Deployment model (trained on all clips: no held-out accuracy)", "",
                  f"int8 .tflite {deploy['int8_tflite_bytes']} B (gzip {deploy['int8_tflite_gzip_bytes']} B), "
                  f"TFLM arena measured {deploy['arena_measured_bytes']} B, written as {deploy['arena_size_bytes']} B; "
                  f"ops: {', '.join(deploy['ops'])}; input scale {deploy['input_scale']:.6g}, zero point "
                  f"{deploy['input_zero_point']}. Files in `deploy/`.", ""]
    return lines


def summarize_teachers(teacher_runs: list[str], parts: list[str]) -> list[dict[str, Any]]:
    """Each teacher run's held-out accuracy and the training time of its folds named in ``parts`` (the
    folds that taught this run), read from its ``report.json``; None where it has no report."""
    teachers = []
    for run in teacher_runs:
        r = read_report(run) if (Path(run) / REPORT_FILE).is_file() else None
        teachers.append({"run": str(run), "mean_accuracy": r["mean_accuracy"] if r else None,
                         "train_seconds": sum(f["wall_seconds"] for f in r["folds"] if f["name"] in parts)
                         if r else None})
    return teachers


def _teachers_markdown(teachers: list[dict[str, Any]]) -> list[str]:
    lines = ["## Teachers (knowledge distillation, `distill.teacher_runs`)", "",
             "| teacher run | its held-out accuracy | training time of the folds that taught (s) |", "|---|---|---|"]
    lines += [f"| {t['run']} | {t['mean_accuracy']:.4f} | {t['train_seconds']:.0f} |" if t["mean_accuracy"] is not None
              else f"| {t['run']} | (no report) | unknown |" for t in teachers]
    return lines + ["", "Each fold was taught by the same fold of every teacher; no teacher trained on that "
                    "fold's test clips.", ""]


def summarize_teacher_table(folder: str) -> dict[str, Any]:
    """What the table of ``distill.teacher_targets`` was made from and how accurate it is out of fold."""
    path = Path(folder) / "teacher.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    return {"folder": relative_path(folder), "embedders": [e["name"] for e in info.get("embedders", [])],
            "probe": info.get("probe"), "accuracy": info.get("accuracy"), "wall_seconds": info.get("wall_seconds")}


def _teacher_table_markdown(table: dict[str, Any]) -> list[str]:
    acc = table["accuracy"] or {}
    lines = ["## Teacher (knowledge distillation, `distill.teacher_targets`)", "",
             f"Out-of-fold probes on pretrained embeddings ({' + '.join(table['embedders']) or 'unknown'}; "
             f"{table['probe']}), from `{table['folder']}`."]
    if acc:
        lines += ["", f"Teacher accuracy on clips it never trained on: {acc['one_fold_held_out']:.4f} with one fold "
                  f"held out, {acc['two_folds_held_out']:.4f} with two. A cross-validation fold learns each training "
                  "clip from the probe that held out that clip's fold and the test fold; the deployment model from "
                  "the probe that held out the clip's fold."]
    return lines + [""]


def _teacher_seconds(teachers: list[dict[str, Any]]) -> str:
    """Their total training time, or "unknown" when a teacher has no report."""
    times = [t["train_seconds"] for t in teachers]
    return "unknown" if None in times else f"{sum(times):.0f}"


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f}"


def summarize_source(config: Config) -> dict[str, Any]:
    """The model this run started from (``train.init_from``): its folder, classes, clips and training time
    (None when its ``export.json`` does not record one)."""
    model_dir = transfer.source_dir(config)
    meta = json.loads((model_dir / META_FILE).read_text())
    export_path = model_dir / "export.json"
    seconds = json.loads(export_path.read_text()).get("wall_seconds") if export_path.is_file() else None
    digest = hashlib.sha256((model_dir / MODEL_FILE).read_bytes()).hexdigest()
    return {"model_dir": str(model_dir), "model_sha256": digest, "classes": len(meta["class_names"]),
            "clips": len(meta["trained_on"]), "train_seconds": seconds}


def _source_markdown(source: dict[str, Any]) -> list[str]:
    return ["## Initialised from (`train.init_from`)", "",
            f"Every model started from `{source['model_dir']}` (model.keras sha256 "
            f"{source['model_sha256'][:16]}...): {source['classes']} other classes, "
            f"{source['clips']} clips, none of this dataset's; its training time (s): "
            f"{_seconds(source['train_seconds'])}. The classifier layer started fresh.", ""]


def _markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"# Run report: {meta['run_dir']}", "",
             "Commands (in order):", ""] + [f"    {c}" for c in meta["commands"]] + ["",
             f"Accuracy on held-out test folds: **{summary['mean_accuracy']:.4f} ± "
             f"{summary['std_accuracy']:.4f}** (mean ± sample std over {len(summary['folds'])} folds); "
             f"pooled over {summary['test_clips']} test clips: {summary['pooled_accuracy']:.4f}."
             + (f" Device cost of this scoring: **{summary['edge']['macs_per_second_of_audio'] / 1e6:.2f} M MACs per "
                "second of audio**." if summary.get("edge", {}).get("macs_per_second_of_audio") else ""), "",
             "| fold | test clips | accuracy | epochs | wall time (s) |", "|---|---|---|---|---|"]
    for f in summary["folds"]:
        lines.append(f"| {f['name']} | {f['test_clips']} | {f['accuracy']:.4f} | {f['epochs']} | "
                     f"{f['wall_seconds']:.0f} |")
    lines += ["", f"Wall time of this invocation: {meta['wall_seconds']:.0f} s; sum of fold times: "
              f"{sum(f['wall_seconds'] for f in summary['folds']):.0f} s"
              + (f", {_teacher_seconds(summary['teachers'])} s more for the teachers' folds"
                 if summary.get("teachers") else "")
              + (f", {summary['init_from']['train_seconds']:.0f} s more for the model it started from"
                 if summary.get("init_from") and summary["init_from"]["train_seconds"] is not None else "") + ".", ""]
    if summary.get("teachers"):
        lines += _teachers_markdown(summary["teachers"])
    if summary.get("teacher_table"):
        lines += _teacher_table_markdown(summary["teacher_table"])
    if summary.get("init_from"):
        lines += _source_markdown(summary["init_from"])
    lines += ["## Per-class scores (pooled test predictions)", "",
              "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, s in summary["per_class"].items():
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1-score']:.3f} | "
                     f"{int(s['support'])} |")
    if summary.get("edge"):
        lines += [""] + _edge_markdown(summary["edge"], summary.get("deploy"))
    lines += ["", "![training curves](curves.png)", "", "![confusion matrix](confusion.png)", "",
              "## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in meta["versions"].items()]
    lines += ["", "The effective configuration is in `config.yaml` and in `report.json`.", ""]
    return "\n".join(lines)


def write_report(run_dir: Path, results: list["FoldResult"], class_names: list[str], config: Config,
                 wall_seconds: float) -> dict[str, Any]:
    """Write report.json, report.md and the two PNGs into ``run_dir``; return the summary."""
    run_dir = Path(run_dir)
    summary = summarize(results, class_names)
    edge = [json.loads(p.read_text()) for p in sorted(run_dir.glob("*/edge.json"))]
    if edge:
        summary["edge"] = summarize_edge(edge)
        summary["edge"]["over_budget"] = over_budget(edge, config.export)
        sizes = summary["edge"]["sizes_mean_over_folds"]
        summary["edge"]["macs_per_second_of_audio"] = \
            sizes["macs"] * sizes.get("inferences_per_clip", 1) / config.audio.clip_seconds
    if config.distill.teacher_runs:
        summary["teachers"] = summarize_teachers(config.distill.teacher_runs, [r.name for r in results])
    if config.distill.teacher_targets:
        summary["teacher_table"] = summarize_teacher_table(config.distill.teacher_targets)
    if config.train.init_from:
        summary["init_from"] = summarize_source(config)
    if (run_dir / "deploy" / "export.json").is_file():
        summary["deploy"] = json.loads((run_dir / "deploy" / "export.json").read_text())
    commands = record_command(run_dir)
    meta = {"run_dir": relative_path(run_dir), "command": commands[0], "commands": commands,
            "wall_seconds": wall_seconds, "versions": package_versions()}
    payload = {**summary, **meta, "config": config.to_dict(),
               "histories": {r.name: r.history for r in results}}
    write_json_atomic(run_dir / REPORT_FILE, payload)
    write_text_atomic(run_dir / "report.md", _markdown(summary, meta))
    figures = {"curves.png": viz.plot_training_curves(payload), "confusion.png": viz.plot_confusion(payload),
               "edge.png": viz.plot_edge(payload)}
    for name, figure in figures.items():
        if figure is not None:
            figure.savefig(run_dir / name, dpi=100)
    return summary


def write_run_report(run_dir: Path, wall_seconds: float) -> dict[str, Any]:
    """:func:`write_report` for a run folder, from what its stages left on disk: ``config.yaml``, every
    finished fold's ``result.json`` and the class names in the models' ``model_meta.json``."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml", written_by_esc_tf=True)
    fold_dirs = sorted(d for d in run_dir.iterdir() if (d / RESULT_FILE).is_file())
    labelled = [d for d in [*fold_dirs, run_dir / DEPLOY_DIR] if (d / META_FILE).is_file()]
    if not labelled:
        raise ModelError(f"{run_dir}: no finished fold or deployment model to report on; run esc-tf train again")
    class_names = ModelMeta.for_model(labelled[0] / MODEL_FILE).class_names
    results = [load_fold_result(d) for d in fold_dirs]
    return write_report(run_dir, [r for r in results if r is not None], class_names, config, wall_seconds)
