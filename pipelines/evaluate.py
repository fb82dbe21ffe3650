"""DVC stage 'evaluate': python pipelines/evaluate.py MODEL_NAME (reads params.yaml)."""

import sys

from aidetector.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", "--model", *sys.argv[1:2]]))
