"""DVC stage 'prepare_set': python pipelines/prepare_set.py NAME (reads params.yaml)."""

import sys

from aidetector.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare-set", "--name", *sys.argv[1:2]]))
