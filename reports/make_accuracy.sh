#!/usr/bin/env bash
# Rebuild reports/accuracy.md from the run folders in runs/ and the baseline JSONs in reports/.
# Usage: bash reports/make_accuracy.sh   (from the repository root). A run folder missing from runs/ (a fresh
# checkout) is read from its saved report in reports/<folder>/ (esc_tf.report --reports).
set -euo pipefail
RUNS=(
  runs/esc10-all-dscnn-folds-00a2dfe7      # default recipe (dscnn, 64 log-mels, every training clip fitted), ESC-10
  runs/esc10-all-dscnn-folds-3418d084      # same with train.seed=7
  runs/esc50-16k-all-dscnn-folds-23607967  # default recipe, esc50-16k (+ deployment model in tflite/)
  runs/esc50-16k-all-dscnn-folds-a6307fea  # same with train.seed=7
  runs/esc10-all-dscnn-folds-b255f2d5      # configs/micro_wide.yaml: wider blocks, 200 epochs, ESC-10
  runs/esc10-all-dscnn-folds-e3e43f48      # same with train.seed=7
  runs/esc50-16k-all-dscnn-folds-2a662c0c  # same, esc50-16k
  runs/esc50-16k-all-dscnn-folds-5178b497  # same with train.seed=7
  runs/esc50-16k-all-dscnn-folds-e83caca8  # micro_wide with train.epochs=300 (folds 1,2 then 3,5)
  runs/esc10-all-dscnn-folds-9d077a44      # micro_wide with train.epochs=300, ESC-10
  runs/esc50-16k-all-dscnn-folds-495f4838  # same with train.seed=7 (all 4 folds in one run)
  runs/esc50-16k-all-dscnn-folds-5a244f52  # micro_wide with train.epochs=500 (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-d14acc5e  # micro_wide at 300 epochs on 95-frame windows, 3 per clip (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-85f4c73f  # micro_wide at 300 epochs with augment.mixup_alpha=1.0 (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-bc4276db  # micro_wide at 300 epochs mixing the sounds (augment.mix_domain=sound, α 1; fold 1)
  runs/esc50-16k-all-dscnn-folds-c0425766  # micro_wide at 300 epochs without SpecAugment (time_masks=0, freq_masks=0)
  runs/esc50-16k-all-dscnn-folds-a8c56f5c  # same without SpecAugment, train.seed=7
  runs/esc50-16k-all-dscnn-folds-01b997fe  # micro_wide at 300 epochs with SpecAugment masks up to 20 % / 25 % (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-77a84795  # micro_wide at 300 epochs on 64 x 311 log-mels (hop 256, stem strides 2 x 4, 12-channel stem; folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-94f8b802  # micro_wide at 300 epochs on 128 x 155 log-mels (stem strides 4 x 2, 12-channel stem; fold 1)
  runs/esc50-16k-all-dscnn-folds-5bf7bea6  # micro_wide at 300 epochs with features.log_offset=0.001 (folds 1,2 then 3,5)
  runs/esc50-16k-all-dscnn-folds-ab3f6d6a  # same (log offset 1e-3) with train.seed=7
  runs/esc50-16k-all-dscnn-folds-268a6bc2  # micro_wide at 300 epochs with log offset 1e-2 (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-56880d23  # the default recipe with log offset 1e-3 (today's default)
  runs/esc10-all-dscnn-folds-2a11cc0c      # micro_wide with features.log_offset=0.001, ESC-10
  runs/esc50-16k-all-dscnn-folds-c8a2319b  # the default recipe (log offset 1e-3) with train.seed=7
  runs/esc50-16k-all-dscnn-folds-5bf7bea6-rolls16  # 5bf7bea6's fold models scored on 16 rotations (export --rescore) = configs/most_accurate.yaml
  runs/esc50-16k-all-dscnn-folds-ab3f6d6a-rolls16  # same for ab3f6d6a (seed 7)
  runs/esc50-16k-all-dscnn-folds-2f949dc0  # configs/most_accurate.yaml trained as it is, train.seed=123
  runs/esc50-16k-all-dscnn-folds-2f949dc0-rolls1  # 2f949dc0 scored on one view (export --rescore --set model.time_rolls=1)
  runs/esc50-16k-all-dscnn-folds-56880d23-rolls16  # the default recipe's models (56880d23) scored on 16 rotations
  runs/esc50-16k-all-dscnn-folds-c8a2319b-rolls16  # same for c8a2319b (seed 7; not used to choose the 16)
  runs/esc50-16k-all-dscnn-folds-0c16befa  # configs/most_accurate.yaml with augment.mixup_alpha=1.0
  runs/esc50-16k-all-dscnn-folds-b8a18af0  # configs/most_accurate.yaml with model.depthwise_kernel=5 (fold 1)
  runs/esc50-16k-all-dscnn-folds-8779ff98  # configs/most_accurate.yaml with model.pool=avg3 (fold 1)
  runs/esc50-16k-all-dscnn-folds-ea85f7b3  # configs/most_accurate.yaml with model.pool=max3 (fold 1)
  runs/esc50-16k-all-dscnn-folds-873fb638  # configs/most_accurate.yaml with model.head=mean+max (fold 1)
  runs/esc50-16k-all-dscnn-folds-d301ea73  # configs/most_accurate.yaml with model.full_conv_stages=1 (fold 1, then 2,3,5)
  runs/esc50-16k-all-dscnn-folds-a66a2c28  # configs/most_accurate.yaml with augment.speed_prob=0.8, speed_range=[0.85,1.15] (fold 1)
  runs/esc50-16k-all-dscnn-folds-c4889994  # configs/most_accurate.yaml with model.stage_filters=[48,128,208,208] (fold 1)
  runs/esc50-16k-all-dscnn-folds-6a078666  # configs/most_accurate.yaml with train.batch_size=16 (folds 1, 2, 3)
  runs/esc50-16k-all-dscnn-folds-e4cff5a3  # configs/micro_ensemble.yaml: two branches in one model (model.branches=2; int8 over the flash budget)
  runs/esc10-all-dscnn-folds-45984959      # configs/micro_ensemble.yaml on ESC-10 (train.epochs=200), from scratch
  runs/esc10-all-dscnn-folds-45984959-rolls1  # the same models on one view (export --rescore --set model.time_rolls=1)
  runs/esc10-all-dscnn-folds-e66dff5e      # same with train.seed=7
  runs/esc50-16k-all-dscnn-folds-7631c039  # configs/most_accurate.yaml with model.dropout=0.5
  runs/esc50-16k-all-dscnn-folds-86f319c1  # configs/most_accurate.yaml with train.label_smoothing=0.1 (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-c06308c2  # configs/most_accurate.yaml with train.lr_schedule=onecycle, train.learning_rate=0.006
  runs/esc50-16k-all-dscnn-folds-7525b652  # configs/most_accurate.yaml with model.head=mel-rows (folds 1, 2; stopped in fold 3)
  runs/esc50-16k-all-dscnn-folds-8c063275  # configs/most_accurate.yaml with augment.shift_seconds=2.5 (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-69a9c5cf  # configs/most_accurate.yaml with model.squeeze_excite_stages=[3] (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-4474c9d4  # most_accurate distilled from the two teacher runs below, T 4, weight 0.9 (folds 1, 2)
  runs/esc50-16k-all-dscnn-folds-e5e98413  # same at T 2, weight 0.5 (folds 1, 2)
  runs/teacher-most_accurate-seed7         # configs/most_accurate.yaml, train.seed=7, rerun in session 14 (folds 1,2 then 3,5)
  runs/teacher-most_accurate-seed123       # same with train.seed=123 (the command of 2f949dc0, rerun)
  runs/rerun-most_accurate-seed42          # same with the default seed 42 (the recipe of 5bf7bea6-rolls16, rerun)
  runs/rescore-most_accurate-seed7-mels1   # teacher-most_accurate-seed7 rescored with model.mel_shifts=1 (session 15; = configs/most_accurate.yaml since)
  runs/rescore-most_accurate-seed123-mels1 # same for teacher-most_accurate-seed123
  runs/rescore-most_accurate-seed42-mels1  # same for rerun-most_accurate-seed42
  runs/most_accurate-mels1-seed2026        # configs/most_accurate.yaml with mel shifts, train.seed=2026
  runs/most_accurate-mels1-seed2026-mels0  # the same models rescored with model.mel_shifts=0 (16 views)
  runs/filter6-seed7                       # the 16-view recipe with augment.filter_db=6, train.seed=7 (not kept)
  runs/most_accurate-swa60-seed2026        # configs/most_accurate.yaml with train.swa_epochs=60, swa_learning_rate=6e-4, seed 2026
  runs/most_accurate-swa60-seed42          # same with train.seed=42
  runs/most_accurate-melaug2-seed2026      # configs/most_accurate.yaml with augment.mel_shift=2, seed 2026
  runs/most_accurate-melaug2-seed42        # same with train.seed=42
  runs/most_accurate-melaug2-seed7         # same with train.seed=7 (= configs/most_accurate.yaml since session 16)
  runs/most_accurate-melaug2-seed123       # configs/most_accurate.yaml (mel_shift 2 in it) with train.seed=123
  runs/esc10-all-dscnn-folds-6c9d3abe      # ESC-10 transfer from the retrained source, seed 42, 16 rotations
  runs/esc10-all-dscnn-folds-14f0f1e5      # same with train.lr_schedule=onecycle
  runs/esc10-all-dscnn-folds-b255f2d5-rolls16      # ESC-10 micro_wide (b255f2d5, log offset 1e-6) on 16 rotations
  runs/esc10-all-dscnn-folds-e3e43f48-rolls16      # same for e3e43f48 (seed 7)
  runs/esc10-all-dscnn-folds-2a11cc0c-rolls16      # same for 2a11cc0c (log offset 1e-3)
  runs/esc50-16k-not-esc10-micro_wide-logoff1e-3-pretrain  # the 40-class source with log offset 1e-3 (fold 1 + deploy/; retrained in sessions 13 and 15: the session-15 training, saved as -s15)
  runs/esc10-from40-mels1-seed42           # ESC-10 transfer from the session-15 source, seed 42, 16 rotations x mel shifts -1/0/+1
  runs/esc10-from40-mels1-seed42-mels0     # the same models rescored on 16 rotations (model.mel_shifts=0)
  runs/esc10-from40-melaug2-seed42         # the mels1 transfer with augment.mel_shift=2
  runs/esc50-16k-not-esc10-micro_wide-melaug2-pretrain  # a 40-class source trained with augment.mel_shift=2 (session 16)
  runs/esc10-from40melaug2-melaug2-seed42  # ESC-10 transfer from it, augment.mel_shift=2, seed 42
  runs/esc10-from40melaug2-melaug2-seed7   # the same, seed 7
  runs/esc10-from40melaug2-melaug2-seed123 # the same, seed 123
  runs/esc10-from40melaug2-melaug2-mixstyle04-seed42  # the same with augment.freq_mixstyle_prob=0.4, seed 42
  runs/esc10-from40melaug2-melaug2-mixstyle04-seed7   # the same, seed 7
  runs/esc10-all-dscnn-folds-66032d6f      # ESC-10 micro_wide started from that source (log offset 1e-3)
  runs/esc10-all-dscnn-folds-66032d6f-rolls16      # the same models on 16 rotations
  runs/esc10-all-dscnn-folds-81c18876      # same transfer with train.seed=7
  runs/esc10-all-dscnn-folds-0d13697e      # same transfer with train.seed=123
  runs/esc10-all-dscnn-folds-0d13697e-rolls16  # 0d13697e scored on 16 rotations (export --rescore)
  runs/esc10-all-dscnn-folds-65b2ece0      # micro_wide on ESC-10 trained alongside the other 40 classes (train.auxiliary_dir)
  runs/esc10-all-dscnn-folds-81c18876-rolls16      # the same models on 16 rotations
  runs/esc10-all-dscnn-folds-eafcda2c-rolls16      # ESC-10 transfer (eafcda2c, log offset 1e-6) on 16 rotations
  runs/esc10-all-dscnn-folds-58df7c33-rolls16      # same for 58df7c33 (seed 7)
  runs/esc10-all-dscnn-folds-01fa0613      # micro_wide on ESC-10 read at 22.05 kHz (hop 690, fmax 11025)
  runs/esc50-16k-not-esc10-micro_wide-pretrain  # micro_wide on the 40 classes outside ESC-10 (fold 1 + deploy/): a source
  runs/esc10-all-dscnn-folds-eafcda2c      # micro_wide on ESC-10 started from that source (train.init_from)
  runs/esc10-all-dscnn-folds-58df7c33      # same with train.seed=7
  runs/esc10-all-dscnn-folds-c1994892      # same (seed 42) with train.learning_rate=0.001
  runs/esc50-16k-not-esc10-micro_wide-300ep-pretrain  # the same source at 300 epochs
  runs/esc10-all-dscnn-folds-bcd8d129      # ESC-10 transfer from the 300-epoch source
  runs/esc10-all-dscnn-folds-ebf72ea8      # ESC-10 transfer (200-epoch source) without SpecAugment
  runs/esc50-16k-all-dscnn-folds-749861fd  # micro_wide distilled from the four esc50-16k runs above (train.teacher_runs)
  runs/esc50-16k-all-dscnn-folds-4babd6ba  # micro_wide at 300 epochs distilled from a 3.6x larger teacher (fold 1)
  runs/esc50-16k-all-dscnn-folds-6879e7f9  # micro_wide with AdamW weight decay 0.05 and a weight average (EMA 0.998)
  runs/esc50-16k-all-dscnn-folds-775b3231  # 40 log-mels, 24-channel stem, every training clip fitted
  runs/esc10-all-dscnn-folds-df47ddfe      # session-2 default: 40 log-mels, 12.5 % early-stopping carve
  runs/esc50-16k-all-dscnn-folds-e9f305fb  # same, esc50-16k
  runs/esc50-16k-all-dscnn_deep-folds-*    # dscnn_deep experiment (40 log-mels, early-stopping carve)
  runs/esc50-16k-all-dscnn-folds-8c8cad36  # 40 log-mels with waveform-domain augmentation and pruning (session 1)
  runs/esc10-all-default-folds-b389a957    # former default = configs/mfcc_cnn.yaml (preset then named "default")
  runs/esc10-all-seed-folds-40ea19a6
  runs/esc50-16k-all-default-folds-870e205b
  runs/esc50-16k-all-seed-folds-f924abda
)
{
echo "# Accuracy at a microcontroller footprint (issue #5): measured so far"
echo
echo "Generated by \`bash reports/make_accuracy.sh\` (\`python -m esc_tf.report RUN ...\` over the run folders; each"
echo "run's commands are listed under the table, and reports/ holds each run's full report). Float = the Keras model"
echo "of each fold; int8 TFLM = that model quantised (pruned to 50 % first where the recipe prunes), run in the TFLM"
echo "interpreter, on the same test fold. Training time: sum of the folds' wall time on 2 cores, often shared with"
echo "other jobs (an upper bound). esc50-16k reads a little optimistic (see ../shared/data/README.md)."
echo "Targets: >= 80 % ESC-50, >= 92 % ESC-10, int8 <= 128 KB, arena <= 64 KB."
echo
echo "Preset names: \`dscnn\` is the default recipe (built-in defaults = configs/micro_logmel.yaml); rows with preset"
echo "\`default\` are the former default, now \`cnn\` (configs/mfcc_cnn.yaml); \`seed\` is configs/mfcc_cnn.yaml with --preset seed."
echo "The features column names a log offset other than today's default 1e-3: every run before session 7 used 1e-6,"
echo "the default of its day (rerun one with --set features.log_offset=1e-6 added to its command)."
echo "configs/most_accurate.yaml scores 48 views per clip since session 15 (model.mel_shifts=1): its runs before that"
echo "scored 16 (rerun one with --set model.mel_shifts=0 added to its command)."
echo "It trains with a random mel shift since session 16 (augment.mel_shift=2): its runs before that trained without"
echo "(rerun one with --set augment.mel_shift=0 added to its command)."
echo "Run 8c8cad36 is the micro recipe before augmentation moved to the mel domain (and with pruning on)."
echo "Runs made before model.stem_filters existed (all 40-mel dscnn rows) used a 24-channel stem and, except"
echo "775b3231, carved 12.5 % of the training clips for early stopping: their commands ran with the defaults of"
echo "their day; rerun them with --config reports/<folder>/config.yaml --set model.stem_filters=24."
echo
python -m esc_tf.report "${RUNS[@]}" --reports reports
echo
echo "The 40-class source of the log-offset-1e-3 ESC-10 transfer runs (runs/esc50-16k-not-esc10-micro_wide-logoff1e-3-pretrain)"
echo "was trained three times into the same folder with the same command. Runs 66032d6f, 81c18876 and 0d13697e started from the"
echo "session-8 training, of which no report was saved; its row as this table read it then: esc50-16k (not-esc10), 1 fold,"
echo "0.7844 float / 0.7969 int8 TFLM on its 40 classes, 115,112 B, 61,920 B arena, 3,403,392 MACs, 438 s. Runs 6c9d3abe"
echo "and 14f0f1e5 started from the session-13 training (reports/esc50-16k-not-esc10-pretrain-logoffset1e-3/: fold 1"
echo "0.8063 float / 0.8031 int8 TFLM, 460 s). Runs esc10-from40-mels1-seed42 and -mels0 started from the session-15 training,"
echo "the row of that folder above (saved in reports/esc50-16k-not-esc10-pretrain-logoffset1e-3-s15/). Command: \`python -m esc_tf.train --data-dir ../shared/data/esc50-16k"
echo "--subset not-esc10 --config configs/micro_wide.yaml --folds 1 --set export.publish_dir= --run-dir"
echo "runs/esc50-16k-not-esc10-micro_wide-logoff1e-3-pretrain\`."
echo
echo "## Classical baselines in the same folds"
echo
echo "\`python -m esc_tf.baselines --data-dir DIR --config configs/mfcc_cnn.yaml\`: pooled statistics (mean, std,"
echo "min, max of each of the 13 MFCCs and of their first difference: 104 values) of the MFCC front end."
echo
echo "| dataset | model | mean ± std |"
echo "|---|---|---|"
for f in reports/baselines_esc10.json reports/baselines_esc50-16k.json; do
  [ -f "$f" ] && python -c "
import json; d=json.load(open('$f')); name='$f'.split('_',1)[1][:-5]
for k,v in d['results'].items(): print(f'| {name} | {k} | {v[\"mean\"]:.4f} ± {v[\"std\"]:.4f} |')"
done
} > reports/accuracy.md
echo "wrote reports/accuracy.md"
