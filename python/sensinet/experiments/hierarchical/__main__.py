"""python -m sensinet.experiments.hierarchical: the same as sensinet experiment hierarchical."""
import sys

from .. import hierarchical, script

sys.exit(script(hierarchical))
