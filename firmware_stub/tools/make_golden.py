"""Generate ``golden_clip.h`` / ``golden_clip.c``: the firmware self-test's clip and expectations.

The clip is a short stretch of int16 PCM at the model's sample rate (1 s by default). The
device plays it looped until one model window (``kClipSamples``) is complete; the files
hold what Python computes for exactly that: the int8 input tensor (training front end +
TFLite quantisation) and the int8 scores of the model in the TFLM interpreter, with the
expected top class, the model size and the front end fingerprint they belong to.

    python -m firmware_stub.tools.make_golden [--model tflite/model_int8.tflite]
        [--clip AUDIO [--start SECONDS] | --from-existing] [--seconds 1.0] [--out-dir DIR]

``--clip`` takes any file soundfile reads (mixed to mono, resampled to the model's rate);
without ``--start`` the loudest stretch is used. Without ``--clip`` a seeded synthetic
clip is used. ``--from-existing`` keeps the samples of the golden files already in the
output folder and recomputes the expectations (after a new export). The files go next to
the model by default, beside the export's other generated files.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esc_tf import artifacts
from esc_tf.artifacts import ModelMeta
from esc_tf.audio.features import feature_shape
from esc_tf.codegen import c_source as cg
from esc_tf.codegen.frontend_tables import frontend_fingerprint
from firmware_stub.tools import reference

COMMAND = "python -m firmware_stub.tools.make_golden"
HEADER, SOURCE = "golden_clip.h", "golden_clip.c"
SOURCE_PREFIX = "// Clip: "


@dataclass
class Golden:
    """A golden clip and what the device must compute for it."""

    clip: np.ndarray  # int16, played looped
    source: str  # one line saying where the samples came from
    inputs: np.ndarray  # int8 [coefficients * frames]
    scores: np.ndarray  # int8 [classes]
    top_class: int
    margin: int  # int8 steps between the best and the second-best score


def synthetic_clip(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A seeded test signal: a tone, a chirp and noise, about -12 dBFS, as int16."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = 0.15 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * np.sin(2 * np.pi * (1000.0 + 1500.0 * t) * t)
    x += 0.02 * rng.standard_normal(t.size)
    return reference.to_int16(x)


def load_clip(path: str | Path, sample_rate: int) -> np.ndarray:
    """Any audio file soundfile reads -> mono int16 at ``sample_rate``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        g = math.gcd(int(rate), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, int(rate) // g)
    return reference.to_int16(mono)


def loudest_start(clip: np.ndarray, length: int, step: int) -> int:
    """Start (a multiple of ``step``) of the ``length``-sample stretch with the most energy."""
    if len(clip) <= length:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(clip.astype(np.float64) ** 2)])
    starts = np.arange(0, len(clip) - length + 1, step)
    return int(starts[np.argmax(energy[starts + length] - energy[starts])])


def compute_golden(model_bytes: bytes, meta: ModelMeta, clip: np.ndarray, source: str) -> Golden:
    """The int8 input and TFLM scores of one window of ``clip`` played looped."""
    played = reference.loop_to_length(clip, meta.config.audio.clip_samples)
    inputs = reference.python_inputs(reference.from_int16(played)[None], meta, model_bytes)[0]
    scores = reference.tflm_scores(model_bytes, inputs[None])[0]
    order = np.argsort(-scores.astype(int), kind="stable")
    margin = int(scores[order[0]]) - int(scores[order[1]]) if len(scores) > 1 else 0
    return Golden(np.asarray(clip, np.int16), source, inputs, scores, int(order[0]), margin)


def golden_sources(golden: Golden, meta: ModelMeta, model_bytes: bytes) -> dict[str, str]:
    """The text of ``golden_clip.h`` and ``golden_clip.c``."""
    coeffs, frames = feature_shape(meta.config)
    label = meta.class_names[golden.top_class]
    model_sha = hashlib.sha256(model_bytes).hexdigest()[:16]
    defines = [
        ("kGoldenClipSamples", str(len(golden.clip))),
        ("kGoldenInputCount", str(coeffs * frames)),
        ("kGoldenScoreCount", str(len(golden.scores))),
        ("kGoldenExpectedClass", str(golden.top_class)),
        ("kGoldenModelBytes", f"{len(model_bytes)}u"),
        ("kGoldenFrontendFingerprint", f'"{frontend_fingerprint(meta.config, meta.normalization)}"'),
    ]
    width = max(len(name) for name, _ in defines)
    body = "\n".join([
        "#include <stdint.h>", "",
        *(f"#define {name:<{width}} {value}" for name, value in defines), "",
        "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
        "// The clip, played looped until kClipSamples samples (one model window) are in.",
        "extern const int16_t g_golden_clip[kGoldenClipSamples];",
        "// The expected model input (coefficient-major) and int8 scores for that window.",
        "extern const int8_t g_golden_input[kGoldenInputCount];",
        "extern const int8_t g_golden_scores[kGoldenScoreCount];", "",
        "#ifdef __cplusplus", "}", "#endif"])
    about = (cg.banner("Golden clip for the firmware self-test.", COMMAND)
             + f"{SOURCE_PREFIX}{golden.source}\n"
             + f"// Model: {len(model_bytes)} bytes, sha256 {model_sha}...; expected class "
             + f"{golden.top_class} ({label}), lead over the runner-up {golden.margin} int8 steps.\n")
    header = about + "\n" + cg.with_guard(HEADER, body)
    source = (about + f'\n#include "{HEADER}"\n\n'
              + cg.int_array("g_golden_clip", golden.clip, "int16_t", "const")
              + cg.int_array("g_golden_input", golden.inputs, "int8_t", "const")
              + cg.int_array("g_golden_scores", golden.scores, "int8_t", "const"))
    return {HEADER: header, SOURCE: source}


def read_existing(directory: str | Path) -> tuple[np.ndarray, str]:
    """The samples and the source line of golden files already in ``directory``."""
    text = (Path(directory) / SOURCE).read_text()
    source = next(line[len(SOURCE_PREFIX):] for line in text.splitlines() if line.startswith(SOURCE_PREFIX))
    body = text[text.index("g_golden_clip["):]
    body = body[body.index("{") + 1: body.index("}")]
    return np.array([int(v) for v in re.findall(r"-?\d+", body)], np.int16), source


def make_golden(model_path: str | Path, clip: np.ndarray, source: str) -> tuple[Golden, dict[str, str]]:
    """Golden values and file texts for the model at ``model_path`` (model_meta.json beside it)."""
    model_bytes = Path(model_path).read_bytes()
    meta = ModelMeta.for_model(model_path)
    golden = compute_golden(model_bytes, meta, clip, source)
    return golden, golden_sources(golden, meta, model_bytes)


def select_clip(args: argparse.Namespace, sample_rate: int, hop: int, out_dir: Path) -> tuple[np.ndarray, str]:
    """The samples and source line the command line asks for."""
    length = int(round(args.seconds * sample_rate))
    if args.from_existing:
        return read_existing(out_dir)
    if length < 1:
        raise ValueError(f"--seconds {args.seconds:g} holds no sample at {sample_rate} Hz; e.g. --seconds 1")
    if args.clip is None:
        return synthetic_clip(sample_rate, args.seconds), f"synthetic (seed 0), {args.seconds:g} s at {sample_rate} Hz"
    full = load_clip(args.clip, sample_rate)
    if args.start is None:
        start, how = loudest_start(full, length, hop), "the loudest stretch"
    else:
        start, how = int(round(args.start * sample_rate)), "chosen start"
    clip = full[start:start + length]
    if clip.size == 0:
        raise ValueError(f"{args.clip}: no samples from {start / sample_rate:g} s on")
    return clip, f"{Path(args.clip).name}, samples {start}..{start + clip.size} at {sample_rate} Hz ({how})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tflite/model_int8.tflite", help="int8 model, model_meta.json beside it")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--clip", help="audio file to take the golden clip from (default: synthetic)")
    source.add_argument("--from-existing", action="store_true", help="keep the samples of the existing golden files")
    parser.add_argument("--start", type=float, help="start of the stretch in seconds (default: the loudest)")
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length stored in flash (default 1.0)")
    parser.add_argument("--out-dir", help="where to write (default: the model's folder)")
    args = parser.parse_args(argv)
    model = Path(args.model)
    out_dir = Path(args.out_dir) if args.out_dir else model.parent
    try:
        meta = ModelMeta.for_model(model)
        clip, line = select_clip(args, meta.config.audio.sample_rate, meta.config.features.hop_length, out_dir)
        golden, files = make_golden(model, clip, line)
    except (OSError, ValueError, StopIteration, RuntimeError) as exc:  # soundfile's errors are RuntimeErrors
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        artifacts.write_text_atomic(out_dir / name, text)
    print(f"{out_dir / HEADER}, {out_dir / SOURCE}: {line}; expected class {golden.top_class} "
          f"({meta.class_names[golden.top_class]}), lead {golden.margin} int8 steps")
    if golden.margin <= 2:
        print("warning: the top two scores are within 2 int8 steps; a clip with a clearer winner makes "
              "a sturdier self-test", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
