"""Encoder backends: where an :class:`~zeroshot_vision.Encoder`'s two towers run.

``"torch"`` (the default and the reference) runs the transformers model itself, in the
dtype chosen by :func:`~zeroshot_vision._models.pick_dtype`. ``"onnx"`` exports both towers
once to ONNX and runs them with ONNX Runtime on the CPU, in ``"float32"`` or ``"int8"``
(see :mod:`zeroshot_vision._backends.onnx`). Everything around the towers (text cleaning,
padding to 64 tokens, pixel preparation, normalization, probabilities) is the encoder's
own code whatever the backend, so the backends differ only in the numbers the towers
return.

A *route* is a backend with its precision (``"torch/bfloat16"``, ``"onnx/int8"``). An
index records the route its images were encoded with, with the text vectors that route
gives for a few probe texts: a query through another route is accepted when its text
vectors agree with the recorded ones (:data:`TEXT_ROUTE_GUARD`), so that mixing routes
never silently degrades a ranking.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "ONNX_PRECISIONS",
    "PROBE_TEXTS",
    "TEXT_ROUTE_GUARD",
    "EncoderRoute",
    "check_backend",
    "decode_probes",
    "encode_probes",
]

BACKENDS = ("torch", "onnx")
"""The encoder backends: the reference (torch) and ONNX Runtime."""
DEFAULT_BACKEND = "torch"
ONNX_PRECISIONS = ("float32", "int8")
"""Precisions of the ONNX backend: the exported graph as is, or its MatMuls in int8."""

PROBE_TEXTS = (
    "a photo of a dog",
    "a city street at night",
    "a bowl of fruit on a wooden table",
    "a mountain lake under a blue sky",
    "two people laughing at a party",
    "a close-up of a flower",
)
"""Texts an index encodes when it is created, to compare text routes later."""

TEXT_ROUTE_GUARD = 0.99
"""The lowest cosine, on every probe text, between an index's recorded text vectors and
the query encoder's for another route to be accepted. Measured routes of one checkpoint
agree to 0.999 or better (torch float32/bfloat16, ONNX float32/int8); a different
checkpoint with the same name, or a broken export, falls far below."""


@dataclass(frozen=True, kw_only=True)
class EncoderRoute:
    """How an encoder runs its towers: a backend and a precision.

    Attributes:
        backend: ``"torch"`` or ``"onnx"``.
        precision: For torch the model's dtype (``"bfloat16"``, ``"float32"``...), with
            ``"+int8-text"`` when the text tower is quantized; for ONNX ``"float32"`` or
            ``"int8"``.
    """

    backend: str
    precision: str

    def __str__(self) -> str:
        return f"{self.backend}/{self.precision}"

    def options(self) -> str:
        """The ``zsv`` options that select this route."""
        if self.backend == "torch":
            dtype = self.precision.removesuffix("+int8-text")
            quantized = " --quantize-text" if self.precision.endswith("+int8-text") else ""
            return f"--backend torch --dtype {dtype}{quantized}"
        return f"--backend {self.backend} --precision {self.precision}"


def check_backend(backend: str, precision: str | None) -> tuple[str, str | None]:
    """Validate a backend name and its precision; returns them, the precision defaulted.

    Raises:
        InvalidInputError: An unknown backend, or a precision it does not offer.
    """
    if backend not in BACKENDS:
        raise InvalidInputError(
            f"unknown encoder backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    if backend == "torch":
        if precision is not None:
            raise InvalidInputError(
                "precision applies to the onnx backend; the torch backend takes a dtype "
                "(and quantize_text for an int8 text tower)"
            )
        return backend, None
    chosen = precision or "float32"
    if chosen not in ONNX_PRECISIONS:
        raise InvalidInputError(
            f"unknown precision {chosen!r} for the onnx backend; choose one of "
            f"{', '.join(ONNX_PRECISIONS)}"
        )
    return backend, chosen


def encode_probes(vectors: npt.NDArray[np.float32]) -> str:
    """Probe text vectors as compact text (float16, base64) for an index's manifest."""
    import numpy as np

    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f2").tobytes()).decode("ascii")


def decode_probes(text: str, dim: int) -> npt.NDArray[np.float32]:
    """The vectors :func:`encode_probes` wrote, shape ``(len(PROBE_TEXTS), dim)``.

    Raises:
        InvalidInputError: The text is not such a record.
    """
    import numpy as np

    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        vectors = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        return vectors.reshape(len(PROBE_TEXTS), dim)
    except ValueError as exc:
        raise InvalidInputError(f"the recorded probe vectors are damaged ({exc})") from exc
