"""Cost of the C feature front end (firmware_stub/frontend) per second of audio.

1. Operation counts, analytically from the exported tables: window multiplies, FFT
   butterflies and real multiplies/adds, magnitudes (sqrt), mel multiply-accumulates,
   logs, DCT multiply-accumulates, normalisation.
2. Cross-check: x86-64 instructions executed by the real code, counted with valgrind's
   callgrind on a host build (-O2), per frame and per second of audio.
3. Size for a Cortex-M4 (arm-none-eabi-gcc -mcpu=cortex-m4 -mfpu=fpv4-sp-d16
   -mfloat-abi=hard -Os -c; arm-none-eabi-size): code, constant tables and the RAM of one
   frontend_state_t; then the whole front end linked with newlib-nano's libm
   (--gc-sections, entry = a function calling init, push_hop and quantize), for the
   portable FFT and, given --cmsis-dsp DIR (a CMSIS-DSP tree with Include/ and Source/, e.g.
   the cmsisdsp sdist: pip download --no-deps --no-binary :all: cmsisdsp==1.10.3), for
   -DFRONTEND_USE_CMSIS_DSP. Prints a note instead when the cross compiler is not installed
   (Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi).

    python benchmarks/frontend_cost.py [--seconds 10] [--no-callgrind] [--cmsis-dsp DIR]
                                       [section.field=value ...]
"""
from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from esc_tf import artifacts
from esc_tf.audio import features as F  # noqa: E402
from esc_tf.codegen.frontend_tables import sparse_mel, write_frontend_header  # noqa: E402
from esc_tf.config import Config, apply_overrides  # noqa: E402

SOURCES = Path(__file__).resolve().parents[1] / "firmware_stub" / "frontend"
M4_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-Os", "-std=c99",
            "-ffunction-sections", "-fdata-sections"]


def analytic_ops(config: Config) -> dict[str, int]:
    """Operations per frame of the portable C path, counted from the code's loops and the tables."""
    f = config.features
    n, half = f.fft_length, f.fft_length // 2
    stages = int(math.log2(half))
    butterflies = half // 2 * stages  # radix-2 complex FFT of N/2 points
    split = half // 2  # real-FFT post-processing, one (k, N/2-k) pair per step
    _, lengths, _ = sparse_mel(F.frontend_tables(config, artifacts.Normalization.identity(F.num_coefficients(f)))["mel"])
    bins = half + 1
    dct = f.num_mfcc * f.num_mel_bins if f.kind == "mfcc" else 0
    coeffs = F.num_coefficients(f)
    return {
        "window multiplies": n,
        "FFT butterflies (radix-2)": butterflies,
        "FFT real multiplies": 4 * butterflies + 8 * split,
        "FFT real adds": 6 * butterflies + 10 * split,
        "magnitude sqrt": bins,
        "magnitude multiply-adds": 2 * bins,
        "mel multiply-accumulates": int(lengths.sum()),
        "log": f.num_mel_bins,
        "DCT multiply-accumulates": dct,
        "normalise (sub + div)": coeffs,
    }


def prepare(config: Config, directory: Path) -> None:
    """Copy the sources next to a header generated for ``config``."""
    for name in ("frontend.c", "frontend.h", "host_frontend_main.c"):
        shutil.copy(SOURCES / name, directory / name)
    norm = artifacts.Normalization.identity(F.num_coefficients(config.features))
    write_frontend_header(config, norm, directory / "frontend_tables.h")


def callgrind(config: Config, directory: Path, seconds: float) -> dict[str, float] | str:
    """Instructions per frame in frontend_process_frame and per push, or why not measured."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        return "valgrind not installed"
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return "no host C compiler"
    exe = directory / "host_frontend"
    subprocess.run([cc, "-std=c99", "-O2", "-g", "-I", str(directory), str(directory / "frontend.c"),
                    str(directory / "host_frontend_main.c"), "-o", str(exe), "-lm"], check=True)
    rng = np.random.default_rng(0)
    samples = int(seconds * config.audio.sample_rate)
    pcm = (rng.standard_normal(samples) * 3000).clip(-32768, 32767).astype(np.int16)
    (directory / "audio.s16").write_bytes(pcm.tobytes())
    out = directory / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(exe),
                    str(directory / "audio.s16")], check=True, capture_output=True)
    report = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", str(out)],
                            check=True, capture_output=True, text=True).stdout
    frames = 1 + (samples - config.features.frame_length) // config.features.hop_length
    pushes = math.ceil(samples / config.features.hop_length)

    def inclusive(function: str) -> float:
        """Inclusive Ir of the first "file:function [object]" line whose function matches; NaN when none does
        (inlined, or a libm/libc of other names): printed as not found, not as a count of 0."""
        match = re.search(rf"^\s*([\d,]+) \([^)]*\)\s+\S*:{function}(@\S*)? \[", report, re.MULTILINE)
        return int(match.group(1).replace(",", "")) if match else math.nan

    return {
        "frames": frames,
        "process_frame_per_frame": inclusive("frontend_process_frame") / frames,
        "push_per_hop": inclusive("frontend_push_samples") / pushes,
        "logf_per_frame": inclusive(r"(__)?logf\w*") / frames,
        "memmove_per_hop": inclusive(r"__mem(move|cpy)\w*") / pushes,
    }


def m4_size(directory: Path) -> dict[str, int] | str:
    """Bytes of code, constant tables and state RAM when compiled for a Cortex-M4."""
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    if not gcc or not size:
        return ("arm-none-eabi-gcc not found: no Cortex-M4 size measured "
                "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    obj = directory / "frontend_m4.o"
    probe = directory / "state_probe.c"
    probe.write_text('#include "frontend.h"\nfrontend_state_t frontend_state_probe;\n')
    for source, target in [(directory / "frontend.c", obj), (probe, directory / "probe.o")]:
        done = subprocess.run([gcc, *M4_FLAGS, "-I", str(directory), "-c", str(source), "-o", str(target)],
                              capture_output=True, text=True)
        if done.returncode:
            return f"arm-none-eabi-gcc failed (newlib headers missing?): {done.stderr.strip()[:300]}"

    def sections(path: Path) -> dict[str, int]:
        text = subprocess.run([size, "-A", str(path)], check=True, capture_output=True, text=True).stdout
        return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)", text, re.MULTILINE)}

    parts = sections(obj)
    probe_parts = sections(directory / "probe.o")
    berkeley = subprocess.run([size, str(obj)], check=True, capture_output=True, text=True).stdout
    return {
        "code (.text*)": sum(v for k, v in parts.items() if k.startswith(".text")),
        "tables (.rodata*)": sum(v for k, v in parts.items() if k.startswith(".rodata")),
        "data + bss": sum(v for k, v in parts.items() if k.startswith((".data", ".bss"))),
        "state RAM (frontend_state_t)": sum(v for k, v in probe_parts.items() if k.startswith((".bss", "COMMON"))),
        "size output": berkeley.strip(),
    }


ENTRY_C = """\
#include "frontend.h"
static frontend_state_t state;
static int16_t hop[FRONTEND_HOP_LENGTH];
static float out[FRONTEND_NUM_COEFFS];
static int8_t q[FRONTEND_NUM_COEFFS];
void size_probe_entry(void);
void size_probe_entry(void) {
  if (frontend_init(&state) == 0 && frontend_push_hop(&state, hop, out) == 1)
    frontend_quantize(out, FRONTEND_NUM_COEFFS, 0.1f, 0, q);
  for (;;) {}
}
"""

# The CMSIS-DSP files arm_rfft_fast_f32 and arm_cmplx_mag_f32 need.
CMSIS_SOURCES = ["TransformFunctions/arm_rfft_fast_f32.c", "TransformFunctions/arm_rfft_fast_init_f32.c",
                 "TransformFunctions/arm_cfft_f32.c", "TransformFunctions/arm_cfft_init_f32.c",
                 "TransformFunctions/arm_cfft_radix8_f32.c", "TransformFunctions/arm_bitreversal2.c",
                 "ComplexMathFunctions/arm_cmplx_mag_f32.c", "CommonTables/arm_common_tables.c",
                 "CommonTables/arm_const_structs.c"]


def m4_linked(directory: Path, cmsis_dsp: Path | None) -> dict[str, str]:
    """``arm-none-eabi-size`` of the front end linked alone (text, data, bss), per FFT choice."""
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    if not gcc or not size:
        return {}
    (directory / "entry.c").write_text(ENTRY_C)
    link = ["-specs=nano.specs", "-specs=nosys.specs", "-nostartfiles", "-Wl,--gc-sections",
            "-Wl,-e,size_probe_entry", "-lm"]
    variants = {"portable FFT": []}
    if cmsis_dsp:
        # __GNUC_PYTHON__ lets arm_math.h build without CMSIS-Core (only the DSP intrinsics
        # of the fixed-point code depend on it; the f32 RFFT does not).
        variants["CMSIS-DSP rfft_fast"] = ["-DFRONTEND_USE_CMSIS_DSP", "-D__GNUC_PYTHON__",
                                           f"-I{cmsis_dsp / 'Include'}", f"-I{cmsis_dsp / 'PrivateInclude'}",
                                           *(str(cmsis_dsp / "Source" / s) for s in CMSIS_SOURCES)]
    out = {}
    for name, extra in variants.items():
        elf = directory / f"{name.split()[0]}.elf"
        done = subprocess.run([gcc, *M4_FLAGS, "-I", str(directory), str(directory / "frontend.c"),
                               str(directory / "entry.c"), *extra, *link, "-o", str(elf)],
                              capture_output=True, text=True)
        if done.returncode:
            out[name] = "link failed: " + done.stderr.strip()[-300:]
            continue
        text = subprocess.run([size, str(elf)], check=True, capture_output=True, text=True).stdout
        t, d, b = text.splitlines()[1].split()[:3]
        out[name] = f"text {int(t):,}  data {int(d):,}  bss {int(b):,}"
    return out


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    for name, a, b in rows:
        print(f"  {name:<{width}}  {a:>14}  {b:>16}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. features.kind=logmel")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio for the callgrind run")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--cmsis-dsp", type=Path, help="CMSIS-DSP source tree, to size the CMSIS build")
    args = parser.parse_args(argv)
    config = apply_overrides(Config(), args.overrides)
    f = config.features
    frames_per_second = config.audio.sample_rate / f.hop_length
    print(f"front end: {f.kind}, fft {f.fft_length}, hop {f.hop_length}, {f.num_mel_bins} mels, "
          f"{F.num_coefficients(f)} coefficients, {frames_per_second:g} frames/s")

    ops = analytic_ops(config)
    print_table("operations (analytic, portable C path)", [("", "per frame", "per second")]
                + [(k, f"{v:,}", f"{v * frames_per_second:,.0f}") for k, v in ops.items()])

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        prepare(config, directory)
        if not args.no_callgrind:
            measured = callgrind(config, directory, args.seconds)
            if isinstance(measured, str):
                print(f"\ncallgrind: {measured}")
            else:
                rows = [("", "per frame", "per second")]
                for key, label in [("process_frame_per_frame", "frontend_process_frame"),
                                   ("logf_per_frame", "  of which logf (libm)"),
                                   ("push_per_hop", "frontend_push_samples (per hop)"),
                                   ("memmove_per_hop", "  of which memmove (libc)")]:
                    value = measured[key]
                    rows.append((label, "not found", "") if math.isnan(value) else
                                (label, f"{value:,.0f}", f"{value * frames_per_second:,.0f}"))
                flops = ops["FFT real multiplies"] + ops["FFT real adds"] + ops["window multiplies"] + \
                    2 * (ops["mel multiply-accumulates"] + ops["DCT multiply-accumulates"])
                print_table(f"x86-64 instructions, callgrind, -O2, {args.seconds:g} s of audio "
                            f"({measured['frames']} frames); analytic flops/frame {flops:,}", rows)
        sizes = m4_size(directory)
        if isinstance(sizes, str):
            print(f"\nCortex-M4: {sizes}")
        else:
            print_table("Cortex-M4 (" + " ".join(M4_FLAGS) + "), bytes",
                        [(k, f"{v:,}", "") for k, v in sizes.items() if k != "size output"])
            print("  arm-none-eabi-size frontend.o:\n    " + sizes["size output"].replace("\n", "\n    "))
            linked = m4_linked(directory, args.cmsis_dsp)
            print("  linked alone with newlib-nano libm (bss includes one frontend_state_t):")
            for name, line in linked.items():
                print(f"    {name:<20} {line}")
            if not args.cmsis_dsp:
                print("    (CMSIS-DSP build not sized: pass --cmsis-dsp DIR)")


if __name__ == "__main__":
    main()
