"""How good a teacher an ensemble of finished cross-validation runs makes, measured out of fold.

For every test fold, each run's fold model (Keras float, with its own front end and normalisation
from its ``model_meta.json``) scores the fold's test clips on their views; the ensemble averages the
members' clip probabilities. A teacher worth distilling from scores several points above the
student on clips none of its members trained on: that is what this prints, member by member and
for the ensemble, per fold and pooled.

    python benchmarks/teacher_ensemble.py --data-dir DATA/esc50-16k --run runs/A --run runs/B \\
        [--report reports/teacher-ensemble/README.md]
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import numpy as np  # noqa: E402

from esc_tf.artifacts import MODEL_FILE, ModelMeta, relative_path, write_text_atomic  # noqa: E402
from esc_tf.config import apply_override  # noqa: E402
from esc_tf.data import dataset as data_mod  # noqa: E402
from esc_tf.stages.evaluate import score_clips  # noqa: E402


def fold_probabilities(model: Path, data_dir: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Clip probabilities ``[clips, classes]`` of one fold model on the clips ``names``, and their labels."""
    meta = ModelMeta.for_model(model)
    if set(meta.trained_on) & set(names):
        raise SystemExit(f"error: {model} trained on some of the clips it would be scored on")
    config = apply_override(meta.config, f"data.data_dir={data_dir}")
    table = data_mod.read_metadata(config.resolved_data_dir()).set_index("filename").loc[names].reset_index()
    return score_clips(model, meta, config, table, "keras")


def measure(runs: list[Path], data_dir: str) -> dict:
    """Per fold and pooled: each member's accuracy and the ensemble's."""
    folds: dict[str, dict] = {}
    for fold_dir in sorted(runs[0].glob("fold*")):
        test = json.loads((fold_dir / "split.json").read_text())["test"]
        members, labels = [], None
        for run in runs:
            probs, labels = fold_probabilities(run / fold_dir.name / MODEL_FILE, data_dir, test)
            members.append(probs)
        folds[fold_dir.name] = {
            "clips": len(test),
            "members": [float(np.mean(p.argmax(axis=1) == labels)) for p in members],
            "ensemble": float(np.mean(np.mean(members, axis=0).argmax(axis=1) == labels))}
    clips = sum(f["clips"] for f in folds.values())
    pooled = {"members": [sum(f["members"][i] * f["clips"] for f in folds.values()) / clips for i in range(len(runs))],
              "ensemble": sum(f["ensemble"] * f["clips"] for f in folds.values()) / clips}
    return {"runs": [relative_path(r) for r in runs], "data_dir": data_dir, "folds": folds, "pooled": pooled}


def format_table(r: dict, command: str) -> str:
    names = [f"`{Path(run).name}`" for run in r["runs"]]
    lines = ["# An ensemble of finished runs as a teacher, out of fold", "",
             "Each run's fold model (Keras float, each clip on its views) on the fold's test clips, which none of "
             "the members trained on; the ensemble averages the members' clip probabilities.", "",
             "```sh", command, "```", "",
             "| fold | clips | " + " | ".join(names) + " | ensemble |", "|---|---|" + "---|" * (len(names) + 1)]
    for name, f in r["folds"].items():
        lines.append(f"| {name} | {f['clips']} | " + " | ".join(f"{a:.4f}" for a in f["members"])
                     + f" | {f['ensemble']:.4f} |")
    p = r["pooled"]
    lines.append("| **pooled** | | " + " | ".join(f"{a:.4f}" for a in p["members"]) + f" | **{p['ensemble']:.4f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, action="append", required=True, help="a finished CV run; repeatable")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--report", type=Path,
                        help="write the table here (markdown), and teacher_ensemble.json beside it")
    args = parser.parse_args(argv)
    result = measure(args.run, args.data_dir)
    command = "python benchmarks/teacher_ensemble.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    table = format_table(result, command)
    print(table)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.report, table)
        payload = json.dumps({"command": command, **result}, indent=1)
        write_text_atomic(args.report.with_name("teacher_ensemble.json"), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
