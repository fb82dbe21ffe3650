"""DVC stage 'train': python pipelines/train.py MODEL_NAME (reads params.yaml)."""

import sys

from aidetector.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--model", *sys.argv[1:2]]))
