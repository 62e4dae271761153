"""An encoder that loads its model only when something needs encoding.

A front end that opens an existing index knows the model's name and dimension from the
index's manifest; with this stand-in, work that encodes nothing (``zsv index`` on a
folder with nothing new, a server answering from stored vectors) finishes without
importing torch or loading the weights.
"""

from __future__ import annotations

from typing import Any

from zeroshot_vision._errors import DimensionMismatchError
from zeroshot_vision._progress import ProgressOption

__all__ = ["LazyEncoder"]


class LazyEncoder:
    """Stands in for :class:`~zeroshot_vision._encoder.Encoder` until first used.

    ``model_name`` and ``dim`` are answered from the constructor; any other attribute
    loads the encoder (with the options given here) and is read from it.

    Raises:
        DimensionMismatchError: On loading, when the model makes vectors of another
            dimension than ``dim`` (the index's).
    """

    def __init__(
        self,
        model: str,
        dim: int,
        *,
        device: str | None = None,
        dtype: Any = None,
        workers: int | None = None,
        compile: bool = False,
        progress: ProgressOption = None,
        backend: str = "torch",
        precision: str | None = None,
    ) -> None:
        self.model_name = model
        self.dim = dim
        self._options: dict[str, Any] = {
            "device": device,
            "dtype": dtype,
            "workers": workers,
            "compile": compile,
            "progress": progress,
            "backend": backend,
            "precision": precision,
        }
        self._encoder: Any = None

    def _loaded(self) -> Any:
        if self._encoder is None:
            from zeroshot_vision._encoder import Encoder

            encoder = Encoder.from_pretrained(self.model_name, **self._options)
            if encoder.dim != self.dim:
                encoder.close()
                raise DimensionMismatchError(
                    f"model {self.model_name!r} makes vectors of dimension {encoder.dim}, "
                    f"but the index holds dimension {self.dim}",
                    expected=self.dim,
                    actual=encoder.dim,
                )
            self._encoder = encoder
        return self._encoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loaded(), name)

    @property
    def loaded(self) -> bool:
        """Whether the model was needed (and loaded)."""
        return self._encoder is not None

    def close(self) -> None:
        """Close the encoder if it was loaded; nothing to do otherwise."""
        if self._encoder is not None:
            self._encoder.close()
