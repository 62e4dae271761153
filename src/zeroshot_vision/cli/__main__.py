"""``python -m zeroshot_vision.cli``: the same as ``zsv``."""

import sys

from zeroshot_vision.cli.parser import main

sys.exit(main())
