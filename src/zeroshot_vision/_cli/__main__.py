"""``python -m zeroshot_vision``: the same as ``zsv``."""

import sys

from zeroshot_vision._cli.parser import run

sys.exit(run())
