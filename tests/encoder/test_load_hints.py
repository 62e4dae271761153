"""Hints in load and account errors: the model asked for, the installed hub client, real flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import make_jpeg

from zeroshot_vision import _models as models
from zeroshot_vision._cli import EXIT_ERROR, main


def test_offline_hint_names_the_requested_model_and_the_installed_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "a.jpg"
    image.write_bytes(make_jpeg(1))
    code = main(["classify", str(image), "--labels", "a", "--model", "nobody/some-model"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "hf download nobody/some-model --local-dir some-model" in err
    assert "--model some-model" in err
    assert "so400m" not in err and "huggingface-cli" not in err


def test_the_hint_follows_the_hub_client_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.33.2")
    assert models.hub_download_command("a/b", "b") == "huggingface-cli download a/b --local-dir b"
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.2.0")
    assert models.hub_download_command("a/b", "b") == "hf download a/b --local-dir b"


def test_the_installed_hub_client_provides_the_named_command() -> None:
    import importlib.metadata
    import sys

    command = models.hub_download_command("a/b", "b").split()[0]
    scripts = {
        entry.name
        for entry in importlib.metadata.distribution("huggingface_hub").entry_points
        if entry.group == "console_scripts"
    }
    assert command in scripts, (command, scripts, sys.executable)


def test_a_missing_pinecone_key_names_no_flag_the_cli_lacks(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pinecone")
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    source = tmp_path / "photos"
    source.mkdir()
    (source / "a.jpg").write_bytes(make_jpeg(1))
    code = main(
        ["index", str(source), "--index", str(tmp_path / "i"), "--model", str(tiny_model_dir),
         "--store", "pinecone", "--pinecone-host", "http://127.0.0.1:9"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "PINECONE_API_KEY" in err
    assert "api_key=" not in err
