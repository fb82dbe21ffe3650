"""DVC stage `package`: export the champion, import it into BentoML, build the Bento.

`python -m aidetector.stages.package [--model-dir DIR ...]` (see registry/bento.py).
"""

from __future__ import annotations

import sys

from aidetector.registry.bento import main

if __name__ == "__main__":
    sys.exit(main())
