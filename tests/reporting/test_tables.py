"""esc_tf.reporting.tables: what a training command asked for, as a recipe label."""
from __future__ import annotations

from esc_tf.reporting.tables import recipe_label


def test_a_recipe_label_keeps_what_changes_the_recipe_and_drops_where_things_are():
    command = ("esc-tf train --data-dir DATA/esc50-16k --config configs/micro_wide.yaml --folds 1,2 "
               "--set train.seed=7 --set augment.mel_shift=2 --set export.publish_dir= --preset dscnn")
    assert recipe_label(command) == "configs/micro_wide.yaml, augment.mel_shift=2, preset dscnn"
    assert recipe_label("esc-tf train --set train.init_from=runs/x") == "built-in default"


def test_flags_written_with_an_equals_sign_are_one_word():
    command = "esc-tf train --verbose=1 --config=a.yaml --set=model.time_rolls=4 --runs-root=r --split stratified"
    assert recipe_label(command) == "a.yaml, model.time_rolls=4, split stratified"
