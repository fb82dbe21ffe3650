"""DVC stage 'package': export the champion, import it into BentoML, build the Bento."""

import sys

from aidetector.serving.package import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
