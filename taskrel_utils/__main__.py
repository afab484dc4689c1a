"""``python -m taskrel_utils <command>``: the kit's command line (:mod:`taskrel_utils.kit.cli`)."""
import sys

from .kit.cli import main

if __name__ == "__main__":
    sys.exit(main())
