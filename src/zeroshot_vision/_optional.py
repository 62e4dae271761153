"""Import optional dependencies with a message that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from zeroshot_vision._errors import MissingDependencyError


def require(module: str, *, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install.

    Args:
        module: The dotted module name to import.
        extra: The zeroshot-vision extra that provides it (``"pinecone"``, ``"app"``, ...),
            or ``None`` for a core dependency.
        purpose: What needs it, for the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = purpose or "this feature"
        if extra:
            hint = f'pip install "zeroshot-vision[{extra}]"'
        else:
            hint = "pip install --force-reinstall zeroshot-vision"
        raise MissingDependencyError(
            f"{what} needs the '{module.split('.')[0]}' package, which is not installed. "
            f"Install it with: {hint}"
        ) from exc
