"""Cortex-M4 footprint of the firmware's C parts, measured with arm-none-eabi-gcc.

    python -m firmware_stub.tools.footprint [EXPORT_DIR]   # default tflite/

Compiles the C parts against the export's headers with
``-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -Os`` and reports, from
``arm-none-eabi-size`` / ``-nm``: each object's text/data/bss, the RAM of the state
structs, and a link of the C parts alone (newlib-nano, libm, --gc-sections) with a small
driver that runs the self-test feature path and the microphone loop. TFLM itself (its
interpreter and kernels) is not built here; the model's flash is ``kModelBytes`` and its
RAM the ``kTensorArenaSize`` arena, both from ``model_settings.h``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from firmware_stub.tools import host_build

GCC = "arm-none-eabi-gcc"
CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Os", "-ffunction-sections", "-fdata-sections")
OBJECTS = ("frontend.c", "feature_buffer.c", "feature_stream.c", "postprocess.c", "audio_provider.c",
           "self_test.c", "golden_clip.c")
STATES = ("frontend_state_t", "feature_buffer_t", "feature_stream_t", "postprocess_t")
COMPACT_RING = "-DFEATURE_STREAM_COMPACT_RING=1"  # 16-bit mels in the level ring (feature_stream.h)

# Stand-in for main.cc without TFLM: the self-test's feature path, then the microphone
# loop feeding the window and the post-processing (the model input lives in the arena on
# the device; here it is a static buffer, reported apart).
DRIVER = """\
#include "audio_provider.h"
#include "feature_stream.h"
#include "frontend.h"
#include "inference_schedule.h"
#include "postprocess.h"
#include "self_test.h"
feature_stream_t state_feature_stream;
postprocess_t state_postprocess;
int8_t model_input_stand_in[kFeatureElementCount];
int main(void) {
  static int16_t hop[kHopLength];
  self_test_report_t report;
  postprocess_result_t result;
  self_test_begin(&report, frontend_fingerprint(), kModelBytes);
  if (self_test_play_golden(&state_feature_stream, model_input_stand_in) == 0)
    self_test_check_input(&report, model_input_stand_in);
  self_test_check_scores(&report, model_input_stand_in);
  postprocess_init(&state_postprocess, FIRMWARE_AVERAGE_WINDOW, FIRMWARE_VIEWS, 0.6f);
  feature_stream_init(&state_feature_stream);
  audio_provider_init(AUDIO_SOURCE_MICROPHONE);
  for (;;) {
    uint32_t n = audio_provider_read(hop, kHopLength);
    if (n && feature_stream_push(&state_feature_stream, hop, n) == 1 &&
        feature_buffer_full(&state_feature_stream.window)) {
      uint32_t view;
      for (view = 0; view < FIRMWARE_VIEWS; view++) {
        feature_buffer_copy_view(&state_feature_stream.window, view, FIRMWARE_TIME_ROLLS, FIRMWARE_MEL_SHIFTS,
                                 model_input_stand_in);
        if (postprocess_update(&state_postprocess, model_input_stand_in, &result) && result.detected &&
            !self_test_passed(&report))
          return 1;
      }
    }
  }
}
"""
SIZES = "".join(f"#include \"{h}\"\n" for h in ("feature_stream.h", "postprocess.h")) + \
    "".join(f"{t} sizeof_{t};\n" for t in STATES)


def _run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)}\n{done.stderr}")
    return done.stdout


def _size(path: Path) -> tuple[int, int, int]:
    """text, data, bss of an object or executable (Berkeley format)."""
    line = _run(["arm-none-eabi-size", str(path)]).splitlines()[1].split()
    return int(line[0]), int(line[1]), int(line[2])


def _state_sizes(obj: Path) -> dict[str, int]:
    """sizeof of each of STATES, from the symbols of a compiled SIZES."""
    nm = _run(["arm-none-eabi-nm", "-S", str(obj)])
    return {m.group(2): int(m.group(1), 16) for m in re.finditer(r"^\S+ (\S+) \S (?:sizeof_)(\w+)$", nm, re.M)}


def settings(export_dir: Path) -> dict[str, int]:
    text = (export_dir / "model_settings.h").read_text()
    return {k: int(v) for k, v in re.findall(r"#define (k\w+) (\d+)\s*$", text, re.M)}


def measure(export_dir: str | Path) -> dict:
    """All numbers, as a dict (bytes)."""
    if shutil.which(GCC) is None:
        raise RuntimeError(f"{GCC} not found")
    export_dir = Path(export_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src = host_build.stage(export_dir, Path(tmp) / "src")
        (src / "footprint_driver.c").write_text(DRIVER)
        (src / "footprint_sizes.c").write_text(SIZES)
        objects = {}
        for name in (*OBJECTS, "footprint_driver.c", "footprint_sizes.c"):
            obj = Path(tmp) / (name + ".o")
            _run([GCC, *CPU_FLAGS, *CFLAGS, "-c", str(src / name), "-o", str(obj)])
            objects[name] = obj
        states = _state_sizes(objects["footprint_sizes.c"])
        compact = Path(tmp) / "footprint_sizes_compact.o"
        _run([GCC, *CPU_FLAGS, *CFLAGS, COMPACT_RING, "-c", str(src / "footprint_sizes.c"), "-o", str(compact)])
        compact_stream = _state_sizes(compact)["feature_stream_t"]
        elf = Path(tmp) / "c_parts.elf"
        _run([GCC, *CPU_FLAGS, "-Os", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
              *[str(objects[n]) for n in (*OBJECTS, "footprint_driver.c")], "-lm", "-o", str(elf)])
        gcc_version = _run([GCC, "-dumpversion"]).strip()
        return {"objects": {n: _size(objects[n]) for n in OBJECTS}, "states": states,
                "compact_feature_stream_t": compact_stream, "linked": _size(elf), "settings": settings(export_dir),
                "gcc": gcc_version}


def format_table(m: dict) -> str:
    s = m["settings"]
    lines = [f"arm-none-eabi-gcc {m['gcc']}, {' '.join(CPU_FLAGS)} -Os; export: {s.get('kNumCoefficients')} x "
             f"{s.get('kNumFrames')} input, {s.get('kCategoryCount')} classes", "",
             "| object | text | data | bss |", "|---|---|---|---|"]
    lines += [f"| {n.replace('.c', '.o')} | {t:,} | {d:,} | {b:,} |" for n, (t, d, b) in m["objects"].items()]
    t, d, b = m["linked"]
    lines += ["", f"C parts linked with a driver (newlib-nano, libm, --gc-sections): text {t:,}, data {d:,}, "
              f"bss {b:,} (bss includes a {s['kFeatureElementCount']:,}-byte stand-in for the model input, "
              "which lives in the arena on the device)", "",
              "| state | bytes |", "|---|---|"]
    lines += [f"| {name} | {size:,} |" for name, size in m["states"].items()]
    ram = m["states"]["feature_stream_t"] + m["states"]["postprocess_t"]
    lines += ["", f"model flash (kModelBytes) {s['kModelBytes']:,}; tensor arena (kTensorArenaSize) "
              f"{s['kTensorArenaSize']:,}; RAM = arena + feature_stream_t + postprocess_t = "
              f"{s['kTensorArenaSize'] + ram:,} bytes, plus stacks and TFLM's own statics"]
    saved = m["states"]["feature_stream_t"] - m["compact_feature_stream_t"]
    if saved:
        lines += [f"with {COMPACT_RING}: feature_stream_t {m['compact_feature_stream_t']:,}, RAM "
                  f"{s['kTensorArenaSize'] + ram - saved:,} bytes"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        print(format_table(measure(args[0] if args else "tflite")))
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
