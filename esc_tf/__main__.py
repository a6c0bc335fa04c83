"""``python -m esc_tf``: the same as the ``esc-tf`` command."""
from esc_tf.cli.main import console_script

console_script()
