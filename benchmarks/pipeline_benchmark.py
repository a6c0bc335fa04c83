"""Benchmark the input pipeline, side by side in one run.

1. Clips per second: the tf.data feature + augmentation pipeline vs a librosa per-clip loop
   computing the same MFCCs (with the same gain + noise augmentation in numpy).
2. Training step time: the model fed by the live pipeline (mel magnitudes cached once, augmentation,
   log, DCT, SpecAugment and mixup every epoch) vs by pre-computed features. Target: the live
   pipeline adds at most 10 %. The one-off cost of the mel cache is printed too, and spread over
   the configured epochs.

    python benchmarks/pipeline_benchmark.py [--data-dir DIR] [--clips 1280] [--epochs 3] [--repeats 5] [--config FILE]

Without --data-dir it uses random noise clips (the cost does not depend on the content).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import librosa
import numpy as np
import tensorflow as tf
import tf_keras as keras

import esc_tf  # noqa: F401  (selects tf_keras before TensorFlow loads)
from esc_tf import pipeline
from esc_tf.audio.features import feature_shape, normalization_stats
from esc_tf.config import Config, load_config, with_value
from esc_tf.data import dataset as data
from esc_tf.models.networks import build_model


def load_clips(args: argparse.Namespace, config: Config) -> tuple[np.ndarray, np.ndarray, int]:
    if args.data_dir:
        config = with_value(config, "data.data_dir", args.data_dir)
        meta = data.load_dataset(config).iloc[: args.clips]
        waves = data.load_waveforms(meta, config.audio, config.data.cache_dir)
        y = data.labels(meta)
        return waves, y, int(data.labels(data.load_dataset(config)).max()) + 1
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((args.clips, config.audio.clip_samples))).astype(np.float32)
    return waves, rng.integers(0, 50, args.clips).astype(np.int32), 50


def librosa_loop(waves: np.ndarray, config: Config, rng: np.random.Generator) -> np.ndarray:
    """The per-clip alternative: numpy augmentation, librosa MFCC (matched settings)."""
    f, sr = config.features, config.audio.sample_rate
    out = []
    for wave in waves:
        wave = wave * 10 ** (rng.uniform(-6, 6) / 20)
        wave = wave + rng.standard_normal(wave.size).astype(np.float32) * 0.01
        mel = librosa.feature.melspectrogram(y=wave, sr=sr, n_fft=f.fft_length, hop_length=f.hop_length,
                                             win_length=f.frame_length, window="hann", center=False,
                                             power=1.0, n_mels=f.num_mel_bins, fmin=f.fmin, fmax=f.fmax,
                                             htk=True, norm=None)
        out.append(librosa.feature.mfcc(S=np.log(mel + f.log_offset), n_mfcc=f.num_mfcc))
    return np.stack(out)


def clips_per_second(args, config, waves, y, classes) -> tuple[float, float, float]:
    """tf.data clips/s in the first epoch (mel cache built inside it), in later epochs, and librosa's."""
    norm = normalization_stats(waves[:64], config)
    start = time.perf_counter()
    ds = pipeline.train_dataset(waves, y, classes, config, norm, seed=0)
    for _ in ds:
        pass
    first_rate = len(waves) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in ds:
        pass
    epoch_rate = len(waves) / (time.perf_counter() - start)
    librosa_loop(waves[:4], config, np.random.default_rng(0))  # warm-up: numba compilation
    start = time.perf_counter()
    librosa_loop(waves, config, np.random.default_rng(0))
    return first_rate, epoch_rate, len(waves) / (time.perf_counter() - start)


def step_times(args, config, waves, y, classes) -> tuple[dict[str, list[float]], dict[str, list[float]], float]:
    """Wall and CPU seconds per step of every timed fit, live and pre-computed (measured
    alternately, ``--repeats`` times each), and the one-off seconds of building the live pipeline.

    CPU time (all threads of this process) is what the pipeline takes from training on a
    dedicated machine; wall time on a shared VM also carries the scheduler's stalls."""
    norm = normalization_stats(waves[:64], config)
    start = time.perf_counter()
    live = pipeline.train_dataset(waves, y, classes, config, norm, seed=0)
    build = time.perf_counter() - start
    feats = pipeline.feature_array(waves, config, norm)
    onehot = tf.one_hot(y, classes)
    fixed = (tf.data.Dataset.from_tensor_slices((feats, onehot)).shuffle(len(feats))
             .batch(config.train.batch_size))
    models = {}
    for name in ("live", "fixed"):
        keras.utils.set_random_seed(0)
        models[name] = build_model((*feature_shape(config), 1), classes, config.model)
        models[name].compile(keras.optimizers.Adam(1e-3), keras.losses.CategoricalCrossentropy(from_logits=True))
    steps = args.epochs * int(np.ceil(len(waves) / config.train.batch_size))
    wall: dict[str, list[float]] = {"live": [], "fixed": []}
    cpu: dict[str, list[float]] = {"live": [], "fixed": []}
    # Fed the way esc_tf.train feeds a model: one iterator across epochs (pipeline.continuous).
    feeds = {"live": pipeline.continuous(live), "fixed": pipeline.continuous(fixed)}
    for repeat in range(args.repeats + 1):  # the first round warms up (graph tracing) and is not counted
        for name, (ds, steps_per_epoch) in feeds.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            models[name].fit(ds, steps_per_epoch=steps_per_epoch, epochs=args.epochs if repeat else 1, verbose=0)
            if repeat:
                wall[name].append((time.perf_counter() - start) / steps)
                cpu[name].append((time.process_time() - start_cpu) / steps)
    return wall, cpu, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--clips", type=int, default=1280, help="clips to train on (a fold's training part: ~1,300)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed fit")
    parser.add_argument("--repeats", type=int, default=5, help="timed fits per pipeline, alternating; medians")
    parser.add_argument("--config", help="a training config file (YAML/JSON); default: the built-in defaults")
    parser.add_argument("--preset", help="override model.preset")
    args = parser.parse_args()
    config = load_config(args.config) if args.config else Config()
    if args.preset:
        config = with_value(config, "model.preset", args.preset)
    waves, y, classes = load_clips(args, config)
    print(f"{len(waves)} clips of {config.audio.clip_seconds} s at {config.audio.sample_rate} Hz, "
          f"preset {config.model.preset}, {config.features.kind} {feature_shape(config)}, {len(tf.config.list_physical_devices('CPU'))} CPU device(s)")
    first_rate, epoch_rate, lib_rate = clips_per_second(args, config, waves, y, classes)
    print(f"features + augmentation: tf.data {epoch_rate:.1f} clips/s per epoch ({first_rate:.1f} in the first, "
          f"which builds the mel cache and traces the graph), librosa loop {lib_rate:.1f} clips/s, ratio {epoch_rate / lib_rate:.2f}x")
    wall, cpu, build = step_times(args, config, waves, y, classes)
    live, fixed = float(np.median(wall["live"])), float(np.median(wall["fixed"]))
    live_cpu, fixed_cpu = float(np.median(cpu["live"])), float(np.median(cpu["fixed"]))
    steps_per_epoch = int(np.ceil(len(waves) / config.train.batch_size))
    amortised = live_cpu + build / (config.train.epochs * steps_per_epoch)
    print(f"training step (median of {len(wall['live'])} alternating fits of {args.epochs} epochs): "
          f"live pipeline {live * 1000:.1f} ms, pre-computed features {fixed * 1000:.1f} ms wall, overhead "
          f"{100 * (live / fixed - 1):+.1f} %; CPU time {live_cpu * 1000:.1f} vs {fixed_cpu * 1000:.1f} ms, overhead "
          f"{100 * (live_cpu / fixed_cpu - 1):+.1f} % (target <= +10 %)")
    for kind, runs in (("wall", wall), ("CPU", cpu)):
        print(f"  every fit, {kind} ms/step: live " + " ".join(f"{t * 1000:.1f}" for t in runs["live"])
              + " | pre-computed " + " ".join(f"{t * 1000:.1f}" for t in runs["fixed"]))
    print(f"one-off mel cache {build:.2f} s for {len(waves)} clips; spread over {config.train.epochs} epochs the "
          f"live pipeline costs {amortised * 1000:.1f} CPU ms/step, overhead {100 * (amortised / fixed_cpu - 1):+.1f} %")

if __name__ == "__main__":
    main()
