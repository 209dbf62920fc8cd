"""`python -m sensinet <command>`: the same command line as `sensinet`."""
import sys

from .cli import main

sys.exit(main())
