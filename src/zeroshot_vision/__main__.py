"""``python -m zeroshot_vision``: the same as ``zsv``."""

from zeroshot_vision._cli import run

raise SystemExit(run())
