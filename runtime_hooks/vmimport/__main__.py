"""python -m runtime_hooks.vmimport DISK ...: the same as `rich import DISK ...`."""

import sys

from runtime_hooks.vmimport.command import main

sys.exit(main(sys.argv[1:]))
