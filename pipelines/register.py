"""DVC stage 'register': python pipelines/register.py (reads params.yaml)."""

import sys

from aidetector.cli import main

if __name__ == "__main__":
    sys.exit(main(["register"]))
