"""The firmware on the real TFLM, on the host and on a Cortex-M4 (QEMU mps2-an386): agreement with
Python and the device's cost, written to ``reports/device/``.

For the model's export folder (default the published ``tflite/``):

1. TFLM trees at the pinned commits (``firmware_stub/tflm/sources.json``), from ``--tflm-sources``
   (or ``$ESC_TF_TFLM_SOURCES``): one checkout per source; without it they are cloned;
2. both targets built (``firmware_stub.tools.tflm_device``): the start-up lines and self-test of
   ``esc_firmware``, then ``esc_device_check`` on the clips;
3. the Python side (``firmware_stub.tools.reference``): the same int16 clips through the training
   front end and the int8 model in the Python TFLM interpreter;
4. compared: top-1 agreement (the mean of each clip's view probabilities, as the firmware averages),
   clips whose int8 scores are bit-identical, the M4 against the host; accuracy where the model
   never saw the clips; instructions per invoke and per front-end hop on the M4, per second of audio
   for the firmware's schedule; flash by component, arena, stack.

    python benchmarks/device_report.py --tflm-sources DIR --data-dir DATA/esc10 [--folds 4 ...] \\
        [--model tflite/model_int8.tflite] [--out reports/device]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import numpy as np  # noqa: E402

from benchmarks.device_parity import load_clips  # noqa: E402
from esc_tf.artifacts import relative_path, write_json_atomic, write_text_atomic  # noqa: E402
from esc_tf.audio.features import views_per_clip  # noqa: E402
from firmware_stub.tools import footprint, reference, tflm_device, tflm_tree  # noqa: E402

CLOCK_MHZ = 120  # the Cortex-M4 clock the estimate in milliseconds assumes


def _accuracy(predicted: np.ndarray, labels: np.ndarray, where: np.ndarray) -> float | None:
    return float(np.mean(predicted[where] == labels[where])) if where.any() else None


def compare_decisions(c: list[tuple], python: list[tuple]) -> dict:
    """The firmware's streaming decisions against Python's, inference by inference."""
    same_frames = [a[0] for a in c] == [b[0] for b in python]
    n = min(len(c), len(python))
    return {"inferences": len(c), "python_inferences": len(python), "same_inference_frames": same_frames,
            "top_class_agreement": float(np.mean([c[i][1] == python[i][1] for i in range(n)])) if n else None,
            "detected_agreement": float(np.mean([c[i][3] == python[i][3] for i in range(n)])) if n else None,
            "max_abs_top_score_diff": max((abs(c[i][2] - python[i][2]) for i in range(n)), default=None),
            "detections": int(sum(d[3] for d in c))}


def measure(model: Path, data_dir: str, folds: list[int] | None, sources: Path | None, work: Path,
            max_clips: int | None, stream_clips: int, compact_ring: bool = False) -> dict:
    """Build, run and compare; returns every figure of the report."""
    started = time.time()
    export_dir = model.parent
    meta, dataset, waves = load_clips(model, data_dir, folds)
    if max_clips:
        dataset, waves = dataset.iloc[:max_clips].reset_index(drop=True), waves[:max_clips]
    model_bytes = model.read_bytes()
    pcm = reference.to_int16(waves)
    per_clip = views_per_clip(meta.config)
    py_inputs = reference.python_inputs(reference.from_int16(pcm), meta, model_bytes, every_view=True)
    py_scores = reference.tflm_scores(model_bytes, py_inputs).reshape(len(pcm), per_clip, -1)
    py_class = reference.classes_of_views(model_bytes, py_scores)
    labels = dataset["category"].map({n: i for i, n in enumerate(meta.class_names)}).to_numpy()
    unseen = ~dataset["filename"].isin(set(meta.trained_on)).to_numpy()

    # A recording longer than a clip: consecutive clips, as the microphone would hear them.
    recording = pcm[:stream_clips].reshape(-1)
    stride, average, threshold = tflm_device.firmware_schedule(footprint.settings(export_dir)["kNumFrames"])
    py_decisions = reference.stream_decisions(recording, meta, model_bytes, stride, average, threshold)

    trees = tflm_tree.make_trees(work / "tflm", list(tflm_device.TARGETS), sources)
    result: dict = {"model": relative_path(model), "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
                    "clips": int(len(pcm)), "views_per_clip": per_clip, "compact_ring": compact_ring,
                    "data_dir": data_dir, "folds": folds or sorted(set(dataset["fold"])),
                    "unseen_clips": int(unseen.sum()),
                    "recording_seconds": len(recording) / meta.config.audio.sample_rate,
                    "schedule": {"stride_frames": stride, "inferences_averaged": average, "threshold": threshold},
                    "accuracy_python_unseen": _accuracy(py_class, labels, unseen),
                    "targets": {}}
    runs = {}
    for target in tflm_device.TARGETS:
        programs = tflm_device.build(trees[target], target, export_dir, work / f"build-{target}",
                                     compact_ring=compact_ring)
        start_up = tflm_device.firmware_start_up(target, programs["esc_firmware"])
        run = tflm_device.run_check(target, programs["esc_device_check"], pcm, work / f"run-{target}",
                                    with_inputs=True)
        # The kernels alone: Python's TFLM (reference kernels) on the very inputs the device computed.
        on_device_inputs = reference.tflm_scores(model_bytes, run.inputs.reshape(-1, run.inputs.shape[-1]))
        runs[target] = run
        c_class = reference.classes_of_views(model_bytes, run.scores)
        _, decisions = tflm_device.run_recording(target, programs["esc_device_check"], recording,
                                                 work / f"run-{target}")
        entry = {
            "firmware_start_up": start_up.lines, "self_test_passed": start_up.self_test_passed,
            "arena_used_bytes": start_up.arena_used,
            "top1_agreement_with_python": float(np.mean(c_class == py_class)),
            "clips_bit_identical_to_python": int(np.sum(np.all(run.scores == py_scores, axis=(1, 2)))),
            "max_abs_score_diff_to_python": int(np.abs(run.scores.astype(int) - py_scores).max()),
            "inputs_equal_to_python": int(np.sum(np.all(run.inputs.reshape(py_scores.shape[0], -1) ==
                                                        py_inputs.reshape(py_scores.shape[0], -1), axis=1))),
            "views_bit_identical_to_python_tflm_on_device_inputs": int(np.sum(np.all(
                run.scores.reshape(-1, run.scores.shape[-1]) == on_device_inputs, axis=1))),
            "views": int(run.scores.shape[0] * run.scores.shape[1]),
            "accuracy_unseen": _accuracy(c_class, labels, unseen),
            "run_wall_seconds": round(run.wall_seconds, 1),
            "streaming": compare_decisions(decisions, py_decisions),
        }
        if target == "cortex-m4":
            entry.update(m4_cost(run, programs["esc_device_check"], footprint.settings(export_dir), per_clip))
            entry["firmware_static_ram_bytes"] = tflm_device.static_ram(programs["esc_firmware"])
        result["targets"][target] = entry
    host, m4 = runs["host"].scores, runs["cortex-m4"].scores
    result["m4_clips_bit_identical_to_host"] = int(np.sum(np.all(host == m4, axis=(1, 2))))
    result["wall_seconds"] = round(time.time() - started, 1)
    return result


def m4_cost(run: tflm_device.CheckRun, elf: Path, s: dict[str, int], views: int) -> dict:
    """Instructions (measured through the calibrated SysTick under -icount), flash, RAM and stack."""
    per_tick = run.instructions_per_tick
    invoke = run.invoke_ticks.mean * per_tick
    hop = run.hop_ticks.mean * per_tick
    window = run.window_ticks.mean * per_tick
    hops_per_second = s["kSampleRate"] / s["kHopLength"]
    stride, _, _ = tflm_device.firmware_schedule(s["kNumFrames"])
    streaming = hop * hops_per_second + (window + invoke * views) * hops_per_second / stride
    every_fifth = hop * hops_per_second + (window + invoke * views) * hops_per_second / max(1, s["kNumFrames"] // 5)
    return {
        "instructions_per_tick": per_tick, "calibration": [run.calibration_ticks, run.calibration_instructions],
        "instructions_per_invoke": round(invoke), "instructions_per_invoke_max": round(run.invoke_ticks.max * per_tick),
        "instructions_per_hop": round(hop), "instructions_per_hop_max": round(run.hop_ticks.max * per_tick),
        "instructions_per_window": round(window),
        "hops_per_second": hops_per_second, "inference_stride_frames": stride, "views_per_inference": views,
        "instructions_per_second_streaming": round(streaming),
        "instructions_per_second_five_decisions_per_clip": round(every_fifth),
        "stack_peak_bytes": run.stack_peak_bytes,
        "elf": tflm_device.elf_sizes(elf),
        "flash_by_component": tflm_device.flash_by_component(Path(f"{elf}.map")),
    }


def format_report(r: dict, command: str) -> str:
    """reports/device/README.md."""
    host, m4 = r["targets"]["host"], r["targets"]["cortex-m4"]
    mips = lambda n: f"{n / 1e6:.2f} M"  # noqa: E731
    ms = lambda n: f"{n / (CLOCK_MHZ * 1e3):.1f} ms"  # noqa: E731
    lines = [
        "# The firmware on the real TFLM: host and Cortex-M4", "",
        f"Model `{r['model']}`, {r['clips']} clips of `{Path(r['data_dir']).name}` (folds "
        f"{', '.join(map(str, r['folds']))}), {r['views_per_clip']} views per clip"
        + (", the firmware built with the level ring of 16-bit mels (CMake option "
           "`FEATURE_STREAM_COMPACT_RING=ON`)" if r.get("compact_ring") else "") + ". Written by:", "",
        "```sh", command, "```", "",
        "| | host (x86-64, TFLM reference kernels) | Cortex-M4 (QEMU mps2-an386, CMSIS-NN kernels) |",
        "|---|---|---|",
        f"| self-test of `esc_firmware` | {'passed' if host['self_test_passed'] else 'FAILED'} | "
        f"{'passed' if m4['self_test_passed'] else 'FAILED'} |",
        f"| arena used (TFLM, after `AllocateTensors`) | {host['arena_used_bytes']:,} B | "
        f"{m4['arena_used_bytes']:,} B |",
        f"| top-1 agreement with Python ({r['clips']} clips) | {host['top1_agreement_with_python']:.4f} | "
        f"{m4['top1_agreement_with_python']:.4f} |",
        f"| clips whose int8 scores equal Python's, every view | {host['clips_bit_identical_to_python']} | "
        f"{m4['clips_bit_identical_to_python']} |",
        f"| largest int8 score difference to Python | {host['max_abs_score_diff_to_python']} | "
        f"{m4['max_abs_score_diff_to_python']} |",
        f"| clips whose input tensors (every view) equal Python's | {host['inputs_equal_to_python']} | "
        f"{m4['inputs_equal_to_python']} |",
        f"| views whose int8 scores equal those of Python's TFLM on the device's own input tensor | "
        f"{host['views_bit_identical_to_python_tflm_on_device_inputs']} of {host['views']} | "
        f"{m4['views_bit_identical_to_python_tflm_on_device_inputs']} of {m4['views']} |",
    ]
    if r["unseen_clips"]:
        lines.append(f"| accuracy on the {r['unseen_clips']} clips the model never saw (Python: "
                     f"{r['accuracy_python_unseen']:.4f}) | {host['accuracy_unseen']:.4f} | "
                     f"{m4['accuracy_unseen']:.4f} |")
    lines += ["", f"The Cortex-M4's int8 scores equal the host's on {r['m4_clips_bit_identical_to_host']} of "
              f"{r['clips']} clips (every view). The kernels are bit-exact (last row of the table: the device's "
              "int8 scores against Python's TFLM on the same input tensors); where a score differs from the "
              "Python pipeline's, the input does: the C front end's float arithmetic (FFT, `logf`) puts a few "
              "elements one int8 step away from TensorFlow's ([device_parity.md](../device_parity.md)).",
              "", "## Streaming", "",
              f"The firmware's own `loop()` on a recording of {r['recording_seconds']:g} s (the first clips above, "
              f"one after another) as its microphone: an inference of {r['views_per_clip']} views every "
              f"{r['schedule']['stride_frames']} frames once the window is full, "
              + (f"the last {r['schedule']['inferences_averaged']} inferences averaged"
                 if r['schedule']['inferences_averaged'] > 1 else "no averaging across inferences")
              + f", reported at {r['schedule']['threshold']:g}. Python computes the same schedule from the training "
              "front end "
              "on the whole recording (`firmware_stub.tools.reference.stream_decisions`).", "",
              "| | host | Cortex-M4 |", "|---|---|---|"]
    for key, label in (("inferences", "inferences (Python: {python_inferences})"),
                       ("same_inference_frames", "inferences at the same frames as Python"),
                       ("top_class_agreement", "top class equal to Python's"),
                       ("detected_agreement", "detected / not detected equal to Python's"),
                       ("max_abs_top_score_diff", "largest difference of the averaged top score"),
                       ("detections", "detections reported")):
        h, m = host["streaming"][key], m4["streaming"][key]
        shown = [f"{v:.4f}" if isinstance(v, float) and not isinstance(v, bool) else str(v) for v in (h, m)]
        lines.append(f"| {label.format(**host['streaming'])} | {shown[0]} | {shown[1]} |")
    lines += ["", "## Cost on the Cortex-M4", "",
              "Instructions are counted by QEMU (`-icount shift=0`: one instruction per nanosecond of virtual "
              "time) through the core's SysTick, whose ratio to instructions a loop of known length measures "
              f"({m4['calibration'][1]:,} instructions in {m4['calibration'][0]:,} ticks: "
              f"{m4['instructions_per_tick']:.2f} per tick). Instructions are not cycles: the times at "
              f"{CLOCK_MHZ} MHz below assume one cycle per instruction and are a lower bound (loads, taken "
              "branches, multiply-accumulates into 64 bits and flash wait states take more).", "",
              "| | instructions | at least, at 120 MHz |", "|---|---|---|",
              f"| one `Invoke` (mean; max {mips(m4['instructions_per_invoke_max'])}) | "
              f"{mips(m4['instructions_per_invoke'])} | {ms(m4['instructions_per_invoke'])} |",
              f"| front end, one hop of audio (mean; max {m4['instructions_per_hop_max']:,}) | "
              f"{m4['instructions_per_hop']:,} | {ms(m4['instructions_per_hop'])} |",
              f"| front end, the window finished at its level before an inference (`feature_stream_window`) | "
              f"{m4['instructions_per_window']:,} | {ms(m4['instructions_per_window'])} |",
              f"| one second of audio, the firmware's default schedule, the published scoring scheme "
              f"({m4['hops_per_second']:g} hops; an inference of {m4['views_per_inference']} views every "
              f"{m4['inference_stride_frames']} frames) | {mips(m4['instructions_per_second_streaming'])} | "
              f"{ms(m4['instructions_per_second_streaming'])} |",
              f"| one second of audio, an inference every fifth of a window instead "
              f"(`FIRMWARE_INFERENCE_STRIDE_FRAMES=(kNumFrames / 5)`) | "
              f"{mips(m4['instructions_per_second_five_decisions_per_clip'])} | "
              f"{ms(m4['instructions_per_second_five_decisions_per_clip'])} |", "",
              f"Image (`esc_device_check`, arm-none-eabi-gcc, `-O3`): text {m4['elf']['text']:,} B, data "
              f"{m4['elf']['data']:,} B, bss {m4['elf']['bss']:,} B (bss includes the 256 KiB heap for "
              "semihosting's stdio and the 64 KiB stack that the linker script reserves for measuring; the "
              "firmware itself allocates nothing). Peak stack below `main()`: "
              f"{m4['stack_peak_bytes']:,} B."]
    if "firmware_static_ram_bytes" in m4:
        ram = m4["firmware_static_ram_bytes"]
        lines += ["", f"RAM of the firmware itself (`esc_firmware`, .data + .bss: arena, feature stream, "
                  f"post-processing, the interpreter, newlib's semihosting state): {ram:,} B; with the peak stack "
                  f"above (`esc_device_check` runs the firmware's own `setup()` and `loop()`), "
                  f"{ram + m4['stack_peak_bytes']:,} B ({(ram + m4['stack_peak_bytes']) / 1024:.1f} KiB)."]
    lines += ["", "| flash by component | bytes |", "|---|---|"]
    for name, size in sorted(m4["flash_by_component"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {size:,} |")
    lines += ["", "## Start-up lines", "", "```", *[f"host> {x}" for x in host["firmware_start_up"]],
              *[f"m4>   {x}" for x in m4["firmware_start_up"]], "```", "",
              f"The whole run took {r['wall_seconds']:.0f} s (host run {host['run_wall_seconds']:.0f} s, QEMU run "
              f"{m4['run_wall_seconds']:.0f} s).", ""]
    return "\n".join(lines)


def shown_arguments(argv: list[str]) -> str:
    """The command line for the report: the sources folder as the variable that names it, no machine paths."""
    shown, hide_next = [], False
    for arg in argv:
        if hide_next:
            shown.append(f"${tflm_tree.SOURCES_ENV}")
        elif arg.startswith("--tflm-sources="):
            shown.append(f"--tflm-sources=${tflm_tree.SOURCES_ENV}")
        else:
            shown.append(relative_path(arg) if arg.startswith("/") else arg)
        hide_next = arg == "--tflm-sources"
    return " ".join(a if a.startswith("$") else shlex.quote(a) for a in shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "tflite" / "model_int8.tflite")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--folds", type=int, nargs="*")
    parser.add_argument("--max-clips", type=int, help="only the first N clips")
    parser.add_argument("--stream-clips", type=int, default=40,
                        help="clips played one after another as the recording for the streaming check (default 40)")
    parser.add_argument("--tflm-sources", type=Path, default=os.environ.get(tflm_tree.SOURCES_ENV) or None,
                        help=f"one checkout per pinned source (default ${tflm_tree.SOURCES_ENV}; else cloned)")
    parser.add_argument("--work-dir", type=Path, help="trees and builds (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="report folder, e.g. reports/device")
    parser.add_argument("--compact-ring", action="store_true",
                        help="build the firmware with the level ring of 16-bit mels (FEATURE_STREAM_COMPACT_RING)")
    args = parser.parse_args(argv)
    for target in tflm_device.TARGETS:
        missing = tflm_device.missing_tools(target)
        if missing:
            print(f"error: {target} needs {', '.join(missing)}", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        try:
            result = measure(args.model, args.data_dir, args.folds, args.tflm_sources, work, args.max_clips,
                             args.stream_clips, args.compact_ring)
        except (tflm_tree.TreeError, tflm_device.DeviceError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    command = "python benchmarks/device_report.py " + shown_arguments(argv or sys.argv[1:])
    report = format_report(result, command)
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out / "device.json", {**result, "command": command})
        write_text_atomic(args.out / "README.md", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
