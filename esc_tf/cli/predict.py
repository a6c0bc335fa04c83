"""``esc-tf predict``: classify your own recordings with an exported model."""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from esc_tf.artifacts import write_json_atomic
from esc_tf.stages.predict import (
    AUDIO_EXTENSIONS,
    DEFAULT_MODEL,
    FLOAT_MODEL,
    Classifier,
    FileResult,
    audio_files,
    classify_file,
    format_result,
)

DESCRIPTION = """Classify audio files through the training front end.

MODEL is a .tflite (or .keras) file with its model_meta.json beside it, or a run folder (its
deploy/model_int8.tflite). Any format libsndfile reads, at any rate and channel count, is decoded as
training decodes the dataset; a file shorter than the model's clip is zero-padded, a longer one is cut
into windows every --hop seconds and the windows' probabilities are averaged. A folder is searched
recursively; unreadable files are reported without stopping the rest (exit code 1 if any failed)."""


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser("predict", help="classify your own audio files", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio file(s) or folder(s)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"a .tflite/.keras model with model_meta.json beside it, or a run folder "
                             f"(default: {DEFAULT_MODEL})")
    parser.add_argument("--runtime", choices=["tflm", "litert"], default="tflm",
                        help="interpreter for .tflite models: tflm (as on the device, default) or litert")
    parser.add_argument("--float", dest="use_float", action="store_true",
                        help=f"use {FLOAT_MODEL} from the model's folder instead of the int8 model")
    parser.add_argument("--top-k", type=int, default=3, help="labels to print per file (default 3)")
    parser.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                        help="window step for files longer than the model's clip (default: half a clip)")
    parser.add_argument("--json", help="also write every result here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    if args.top_k < 1:
        print("error: --top-k must be at least 1", file=sys.stderr)
        return 2
    if args.hop is not None and args.hop <= 0:
        print("error: --hop must be positive", file=sys.stderr)
        return 2
    classifier = Classifier.load(args.model, args.runtime, args.use_float)
    results: list[FileResult] = []
    for target in args.inputs:
        files = audio_files(target)
        if not files:
            results.append(FileResult(str(target), error=f"{target}: no audio files "
                                      f"({', '.join(AUDIO_EXTENSIONS)}) in this folder"))
            print(format_result(results[-1]), file=sys.stderr, flush=True)
        for path in files:
            result = classify_file(path, classifier, args.top_k, args.hop)
            results.append(result)
            print(format_result(result), file=sys.stderr if result.error else sys.stdout, flush=True)
    failed = sum(r.error is not None for r in results)
    if failed:
        print(f"{failed} of {len(results)} file(s) could not be classified", file=sys.stderr)
    if args.json:
        write_json_atomic(args.json, {
            "model": str(classifier.model_path), "runtime": classifier.runtime,
            "window_seconds": classifier.audio.clip_seconds,
            "hop_seconds": args.hop if args.hop is not None else classifier.audio.clip_seconds / 2,
            "results": [asdict(r) for r in results]})
    return 1 if failed else 0
