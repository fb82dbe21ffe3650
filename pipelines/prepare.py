"""DVC stage 'prepare' (reads params.yaml)."""

import sys

from aidetector.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare"]))
