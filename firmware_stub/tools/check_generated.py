"""Is an export folder's generated C stale? Regenerate every file from the model and compare.

From ``model_int8.tflite`` + ``model_meta.json`` the export's own generators rebuild
``model_data.h``, ``model_data.cc``, ``model_settings.h``, ``model_op_resolver.h`` and
``frontend_tables.h``; ``golden_clip.h`` / ``golden_clip.c`` are rebuilt from their own
samples by make_golden. Any difference is reported.

The arena lines of ``model_settings.h`` hold a measurement of the TFLM runtime installed
at export time (requirements.txt pins ``tflite-micro``, but an install may hold another version),
so they are compared differently: the
header is regenerated with the committed arena numbers, and the committed
``kTensorArenaSize`` must still be at least what the installed TFLM measures now.

    python -m firmware_stub.tools.check_generated [EXPORT_DIR]   # default tflite/
"""
from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

from esc_tf.artifacts import META_FILE, ModelMeta
from esc_tf.codegen.frontend_tables import frontend_header
from esc_tf.runtime.predictors import measure_arena
from esc_tf.stages import export
from firmware_stub.tools import make_golden

MODEL = "model_int8.tflite"


def _defines(text: str) -> dict[str, str]:
    return dict(re.findall(r"#define (k\w+) (\S+)", text))


def expected_files(export_dir: str | Path) -> tuple[dict[str, str], list[str]]:
    """The generated files as the current code would write them, and problems found on the way."""
    export_dir = Path(export_dir)
    model = (export_dir / MODEL).read_bytes()
    meta = ModelMeta.for_model(export_dir / MODEL)
    problems = []
    ops = export.model_ops(model)
    files = {**export.model_data_files(model), "model_op_resolver.h": export.op_resolver_header(ops),
             "frontend_tables.h": frontend_header(meta.config, meta.normalization)}
    settings = export_dir / "model_settings.h"
    if settings.is_file():
        committed = _defines(settings.read_text())
        arena, measured = int(committed.get("kTensorArenaSize", 0)), int(committed.get("kTensorArenaMeasured", 0))
        needed = measure_arena(model)
        if arena < needed:
            problems.append(f"model_settings.h: kTensorArenaSize {arena} < {needed} bytes measured by the "
                            "installed TFLM: export again")
        check = export.DeviceCheck(ops, measured, arena, len(model))
        files["model_settings.h"] = export.model_settings_header(meta, export.io_quantization(model), check)
    else:
        problems.append("model_settings.h: missing")
    if (export_dir / make_golden.SOURCE).is_file():
        clip, source = make_golden.read_existing(export_dir)
        _, golden = make_golden.make_golden(export_dir / MODEL, clip, source)
        files.update(golden)
    else:
        problems.append(f"{make_golden.HEADER}/{make_golden.SOURCE} missing: run "
                        f"`{make_golden.COMMAND} --model {export_dir / MODEL} --clip AUDIO`")
    return files, problems


def stale(export_dir: str | Path) -> list[str]:
    """One line per stale, missing or inconsistent generated file (empty: all fresh)."""
    export_dir = Path(export_dir)
    files, problems = expected_files(export_dir)
    for name, text in files.items():
        path = export_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        current = path.read_text()
        if current != text:
            diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), "committed", "regenerated",
                                             n=0, lineterm=""))
            problems.append(f"{name}: stale ({len(diff)} diff lines), first: " + " | ".join(diff[2:6]))
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    export_dir = Path(args[0] if args else "tflite")
    if not (export_dir / META_FILE).is_file():
        print(f"error: {export_dir}: no {META_FILE}; pass an export folder (tflite/ or a run's deploy/)",
              file=sys.stderr)
        return 1
    try:
        problems = stale(export_dir)
    except (OSError, ValueError) as exc:  # a missing or damaged model (ModelError is a ValueError)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in problems:
        print(line)
    print(f"{export_dir}: " + ("stale" if problems else "all generated files are fresh"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
