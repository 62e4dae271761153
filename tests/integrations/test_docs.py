"""docs/integrations.md: every Python block runs, in order, as a reader would run them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

for module in ("langchain_core", "llama_index.core", "datasets"):
    pytest.importorskip(module, reason="needs the langchain, llama-index and datasets extras")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_the_page_has_code_for_each_integration() -> None:
    blocks = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    code = "\n".join(blocks)
    for name in ("integrations.langchain", "integrations import llama_index", "index_dataset"):
        assert name in code, name


@pytest.mark.slow
def test_every_python_block_runs(
    tmp_path: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "photos").mkdir()
    for path in photo_paths:
        shutil.copy(path, tmp_path / "photos" / path.name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZSV_MODEL", str(tiny_model_dir))
    import datasets.config

    # datasets reads its cache folder's variable once, at import: set the value itself.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    namespace: dict[str, object] = {"__name__": "docs_integrations"}
    blocks = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{PAGE.name}, python block {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"python block {number} of {PAGE.name} failed:\n{block}") from exc
    out = capsys.readouterr().out
    # What the blocks printed is what the page says they print.
    assert "indexed 6, failed 0" in out
    assert "skipped 6 already indexed" in out
    assert "has no substring matching" in out  # the UnsupportedFilterError's message
    assert "['id', 'vector', 'path']" in out
    assert (tmp_path / "vectors.parquet").is_file()
