"""LazyEncoder: the manifest's facts answer at once, the model loads on first real use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zeroshot_vision._errors import DimensionMismatchError
from zeroshot_vision._lazy_encoder import LazyEncoder


def test_it_loads_the_model_only_when_something_needs_encoding(
    tiny_model_dir: Path, tiny_encoder
) -> None:
    lazy = LazyEncoder(str(tiny_model_dir), tiny_encoder.dim, device="cpu", workers=0)
    assert (lazy.model_name, lazy.dim, lazy.loaded) == (
        str(tiny_model_dir),
        tiny_encoder.dim,
        False,
    )
    vector = lazy.encode_texts(["a cat"])
    assert lazy.loaded
    np.testing.assert_allclose(vector, tiny_encoder.encode_texts(["a cat"]), atol=1e-5)
    lazy.close()
    assert lazy.closed


def test_a_model_of_another_dimension_is_refused_on_loading(
    tiny_model_dir: Path, tiny_encoder
) -> None:
    lazy = LazyEncoder(str(tiny_model_dir), tiny_encoder.dim + 1, device="cpu", workers=0)
    with pytest.raises(DimensionMismatchError, match="index holds dimension"):
        lazy.encode_texts(["a cat"])
    assert not lazy.loaded
    lazy.close()  # nothing loaded: nothing to close, no error
