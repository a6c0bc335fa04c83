#!/usr/bin/env bash
# Real-data cross-validation runs of issue #2, one after the other (2 cores: never two trainings at once).
set -x
export PYTHONUNBUFFERED=1
python -m esc_tf.train --data-dir ../shared/data/esc10 --preset default --set train.verbose=2
python -m esc_tf.train --data-dir ../shared/data/esc10 --preset seed --set train.verbose=2
python -m esc_tf.train --data-dir ../shared/data/esc50-16k --preset default --set train.verbose=2
python -m esc_tf.train --data-dir ../shared/data/esc50-16k --preset seed --set train.verbose=2
