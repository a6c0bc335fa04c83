"""Lay the firmware out as an Arduino sketch folder, from an export.

    python -m firmware_stub.tools.arduino_sketch OUT_DIR [--export tflite] [--name esc_tf_firmware]

The Arduino IDE compiles the files of a sketch folder flat (``.c`` as C, ``.cpp`` as C++,
not ``.cc``): the device sources, the front end and the export's generated files are
copied into ``OUT_DIR/NAME/``, C++ files renamed to ``.cpp``, next to an ``NAME.ino`` that
only says where ``setup()``/``loop()`` are. Host programs and tests are left out. The
TFLM library (``Arduino_TensorFlowLite``) and a board file defining
``board_microphone_read()`` (README.md) come from the user.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from firmware_stub.tools import host_build

DEVICE_SOURCES = ("audio_provider.c", "feature_buffer.c", "feature_stream.c", "postprocess.c", "self_test.c",
                  "main.cc", "model_runner.cc")
DEVICE_HEADERS = ("audio_provider.h", "feature_buffer.h", "feature_stream.h", "firmware_app.h", "inference_schedule.h",
                  "model_runner.h", "postprocess.h", "self_test.h")
GENERATED = (*host_build.EXPORT_HEADERS, *host_build.TFLM_FILES, *host_build.GOLDEN_FILES)
INO = """\
// ESC-50 sound classifier (firmware_stub/), laid out by
// `python -m firmware_stub.tools.arduino_sketch` -- regenerate rather than edit.
// setup() and loop() are in main.cpp; the microphone comes from board_microphone_read(),
// to be defined in a board file of this folder (see firmware_stub/README.md).
"""


def arduino_name(name: str) -> str:
    return name[:-3] + ".cpp" if name.endswith(".cc") else name


def write_sketch(export_dir: str | Path, out_dir: str | Path, name: str = "esc_tf_firmware") -> Path:
    """Write the sketch folder ``out_dir/name``; returns it."""
    export_dir, sketch = Path(export_dir), Path(out_dir) / name
    missing = [f for f in GENERATED if not (export_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{export_dir}: missing {', '.join(missing)} (export, then make_golden)")
    sketch.mkdir(parents=True, exist_ok=True)
    files = [host_build.FRONTEND / "frontend.c", host_build.FRONTEND / "frontend.h"]
    files += [host_build.FIRMWARE / f for f in DEVICE_SOURCES + DEVICE_HEADERS]
    files += [export_dir / f for f in GENERATED]
    for path in files:
        shutil.copyfile(path, sketch / arduino_name(path.name))
    (sketch / f"{name}.ino").write_text(INO)
    return sketch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--export", default="tflite", help="export folder (default tflite/)")
    parser.add_argument("--name", default="esc_tf_firmware", help="sketch name")
    args = parser.parse_args(argv)
    try:
        print(write_sketch(args.export, args.out_dir, args.name))
    except OSError as exc:  # a missing export file, an out_dir that is a file, no permission
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
