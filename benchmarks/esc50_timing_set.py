"""Build a full-size ESC-50 stand-in (2,000 clips, 5 folds, 44.1 kHz 16-bit WAV) for **timing only**.

Training time matters on the official release: 5 folds of 400 clips, 1,600 training clips per
fold, decoded from 44.1 kHz WAV. A 4-fold copy (such as a 16 kHz set without fold 4) is not. This script copies a
4-fold ESC-50-layout folder, resamples every clip to 44.1 kHz WAV (so decoding and resampling cost
what they cost on the real release) and fills fold 4 with a copy of another fold under new names.

Accuracy measured on the result means nothing (fold 4 repeats clips of another fold, so they leak
across folds); only the wall time of ``esc-tf train`` on it does.

    python benchmarks/esc50_timing_set.py --source DATA/esc50-16k --out esc50-timing
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf

OFFICIAL_RATE = 44100


def build(source: Path, out: Path, fill_fold: int = 4, copy_of: int = 1) -> pd.DataFrame:
    """Write ``out/audio/*.wav`` and ``out/meta/esc50.csv``; returns the metadata written."""
    meta = pd.read_csv(source / "meta" / "esc50.csv")
    if fill_fold in set(meta["fold"]):
        raise SystemExit(f"{source}: fold {fill_fold} is already there; nothing to fill")
    filler = meta[meta["fold"] == copy_of].copy()
    filler["source_name"] = filler["filename"]
    filler["fold"] = fill_fold
    filler["filename"] = [f"{fill_fold}-copy{i:04d}-A-{t}.wav" for i, t in enumerate(filler["target"])]
    filler["src_file"] = [f"copy{i:04d}" for i in range(len(filler))]
    meta = meta.assign(source_name=meta["filename"], filename=[Path(n).with_suffix(".wav").name
                                                                 for n in meta["filename"]])
    meta = pd.concat([meta, filler], ignore_index=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "meta").mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(meta.itertuples(), 1):
        audio, rate = sf.read(source / "audio" / row.source_name, dtype="float32", always_2d=True)
        wave = librosa.resample(audio.mean(axis=1), orig_sr=rate, target_sr=OFFICIAL_RATE)
        sf.write(out / "audio" / row.filename, np.clip(wave, -1, 1), OFFICIAL_RATE, subtype="PCM_16")
        if i % 200 == 0:
            print(f"{i}/{len(meta)} clips", flush=True)
    meta = meta.drop(columns="source_name")
    meta.to_csv(out / "meta" / "esc50.csv", index=False)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=Path, help="4-fold ESC-50-layout folder")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    meta = build(args.source, args.out)
    print(f"{args.out}: {len(meta)} clips, folds {sorted(meta['fold'].unique())} (timing only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
