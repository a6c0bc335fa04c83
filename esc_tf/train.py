"""``python -m esc_tf.train ...``: the same as ``esc-tf train ...``."""
import sys

if __name__ == "__main__":
    from esc_tf.cli.main import main

    sys.exit(main(["train", *sys.argv[1:]]))
