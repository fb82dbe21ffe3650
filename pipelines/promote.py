"""DVC stage 'promote': python pipelines/promote.py (reads params.yaml; policy promotion)."""

import sys

from aidetector.cli import main

if __name__ == "__main__":
    sys.exit(main(["promote"]))
