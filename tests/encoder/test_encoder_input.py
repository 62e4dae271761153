"""Query text and devices the encoder cannot use are refused with one clear line.

``sys.argv`` holds lone surrogates for bytes that are not UTF-8, and the tokenizer fails
on them with a ``RuntimeError``; torch fails on unknown or missing devices with its own
errors. Both must be :class:`InvalidInputError`, which ``zsv`` shows as one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.factories import memory_engine

from zeroshot_vision._cli import EXIT_ERROR, main
from zeroshot_vision._errors import InvalidInputError


@pytest.mark.parametrize("text", ["\ud800", "cat \udcff photo", "\udcff"])
def test_text_that_is_not_utf8_is_invalid_input(tiny_encoder, text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        tiny_encoder.encode_texts(["a cat", text])
    message = str(caught.value)
    assert "texts[1]" in message and "UTF-8" in message and "\n" not in message
    assert tiny_encoder.encode_texts(["a cat"]).shape == (1, tiny_encoder.dim)


def test_search_negative_and_labels_with_bad_text_are_invalid_input(tiny_encoder) -> None:

    engine = memory_engine(tiny_encoder)
    with pytest.raises(InvalidInputError):
        engine.search("\ud800")
    with pytest.raises(InvalidInputError):
        engine.search("a cat", negative="\udcff")


def _unavailable_devices() -> list[str]:
    import torch

    devices = ["banana", "cuda:banana", "", "cpu:0:1"]
    if not torch.cuda.is_available():
        devices += ["cuda", "cuda:0"]
    else:
        devices.append(f"cuda:{torch.cuda.device_count()}")  # one past the last GPU
    if not torch.backends.mps.is_available():
        devices.append("mps")
    return devices


@pytest.mark.parametrize("device", _unavailable_devices())
def test_an_unknown_or_unavailable_device_is_invalid_input(
    tiny_model_dir: Path, device: str
) -> None:
    from zeroshot_vision import Encoder

    with pytest.raises(InvalidInputError) as caught:
        Encoder.from_pretrained(tiny_model_dir, device=device)
    message = str(caught.value)
    assert "device" in message and "\n" not in message


def test_cpu_is_always_available(tiny_model_dir: Path) -> None:
    from zeroshot_vision import Encoder

    assert Encoder.from_pretrained(tiny_model_dir, device="cpu").device.type == "cpu"


def test_zsv_classify_with_a_bad_device_or_label_is_one_line(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import make_jpeg

    photo = tmp_path / "p.jpg"
    photo.write_bytes(make_jpeg(3))
    model = ["--model", str(tiny_model_dir)]
    for argv in (
        ["classify", str(photo), "--labels", "cat,dog", "--device", "banana", *model],
        ["classify", str(photo), "--labels", "cat,\udcffdog", *model],
    ):
        assert main(argv) == EXIT_ERROR
        _, err = capsys.readouterr()
        assert err.startswith("zsv: error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
