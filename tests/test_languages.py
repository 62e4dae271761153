"""Model presets, and the warning for a query the loaded model cannot read.

The tiny SigLIP's tokenizer is a real sentencepiece model trained offline on English
words with no byte fallback, as SigLIP v1's: any other script reads as its unknown token,
which is exactly what so400m v1 does with "東京の夜景".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from zeroshot_vision import SearchEngine
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main
from zeroshot_vision._errors import InvalidInputError, ModelLoadError
from zeroshot_vision._language import dominant_script, reading_warning, unreadable_share
from zeroshot_vision._models import DEFAULT_MODEL, locate_checkpoint, resolve_model
from zeroshot_vision._presets import PRESETS, preset_for, preset_names
from zeroshot_vision.stores._faiss import FaissStore

# One query per script the issue names, with the script each is written in.
SCRIPTS = {
    "東京の夜景": "Chinese/Japanese",
    "夜の東京タワー": "Chinese/Japanese",
    "北京的夜景": "Chinese/Japanese",
    "كلب على الشاطئ": "Arabic",
    "समुद्र तट पर कुत्ता": "Devanagari",
    "собака на пляже": "Cyrillic",
    "สุนัขบนชายหาด": "Thai",
    "a dog on the beach": "Latin",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- presets -------------------------------------------------------------------------------


def test_presets_name_the_default_and_the_facts_users_choose_by() -> None:
    assert PRESETS[0].hub_id == DEFAULT_MODEL
    assert not PRESETS[0].multilingual
    multilingual = [p.name for p in PRESETS if p.multilingual]
    assert {"siglip2-so400m", "siglip2-base", "siglip-base-i18n"} <= set(multilingual)
    assert any(p.family == "clip" for p in PRESETS)
    for preset in PRESETS:
        assert "/" in preset.hub_id and preset.dim > 0 and preset.image_size > 0
        assert preset.download_gb > 0 and preset.quality and preset.note
        assert preset_for(preset.name) is preset is preset_for(preset.hub_id)
    assert len(set(preset_names())) == len(PRESETS)


def test_a_preset_name_resolves_to_its_hub_id() -> None:
    assert resolve_model("siglip2-so400m") == "google/siglip2-so400m-patch14-384"
    assert resolve_model(" siglip2-base ") == "google/siglip2-base-patch16-224"
    # Hub ids and other names go through untouched.
    assert resolve_model("google/siglip-base-patch16-224") == "google/siglip-base-patch16-224"


def test_a_folder_named_like_a_preset_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "siglip2-base").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("siglip2-base") == "siglip2-base"


def test_an_unknown_preset_is_an_error_listing_the_presets() -> None:
    with pytest.raises(ModelLoadError) as info:
        locate_checkpoint("siglip3-huge")
    message = str(info.value)
    assert "siglip3-huge" in message
    for name in preset_names():
        assert name in message


def test_model_env_accepts_a_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZSV_MODEL", "siglip-base-i18n")
    assert resolve_model(None) == "google/siglip-base-patch16-256-multilingual"


def test_zsv_models_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == EXIT_OK
    lines = out.splitlines()
    default_line = next(line for line in lines if line.startswith("*"))
    assert "siglip-so400m" in default_line and DEFAULT_MODEL in default_line
    for preset in PRESETS:
        assert preset.hub_id in out
    assert "siglip2-so400m" in lines[-1]  # the one line on non-English collections
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert [row["name"] for row in rows] == list(preset_names())
    assert [row["default"] for row in rows] == [True] + [False] * (len(rows) - 1)
    assert {row["languages"] for row in rows} == {"English", "100+ languages"}


def test_zsv_models_marks_the_env_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZSV_MODEL", "siglip2-base")
    _, out, _ = run(capsys, "models", "--json")
    assert [row["name"] for row in json.loads(out) if row["default"]] == ["siglip2-base"]


def test_an_unknown_preset_on_the_command_line_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, photo_paths: list[Path]
) -> None:
    code, _, err = run(
        capsys, "index", str(photo_paths[0].parent), "--index", str(tmp_path / "i"),
        "--model", "siglip3",
    )  # fmt: skip
    assert code == EXIT_ERROR
    assert err.count("\n") == 1 and "siglip2-so400m" in err and "Traceback" not in err


# -- scripts and unknown tokens --------------------------------------------------------------


@pytest.mark.parametrize(("text", "script"), SCRIPTS.items())
def test_dominant_script(text: str, script: str) -> None:
    assert dominant_script(text) == script


def test_dominant_script_ignores_what_is_not_a_letter() -> None:
    assert dominant_script("🐶 🏖️ 2024 !!") is None
    assert dominant_script("東京 tower at night") == "Latin"  # 12 Latin letters, 2 CJK


def test_unreadable_share_weighs_characters_not_tokens(tiny_encoder: Any) -> None:
    tokenizer = tiny_encoder._processor.tokenizer
    assert unreadable_share(tokenizer, "a dog on a beach") == 0.0
    # sentencepiece folds the whole Japanese run into one unknown token.
    assert unreadable_share(tokenizer, "東京の夜景") == 1.0
    assert unreadable_share(tokenizer, "a dog 東京") == pytest.approx(2 / 6)


class _NoUnknown:
    """A byte-level tokenizer (as CLIP's): nothing is ever unknown."""

    unk_token_id = None

    def __call__(self, text: str, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": list(text.encode())}


def test_an_english_only_preset_warns_by_script_when_no_token_is_unknown() -> None:
    warning = reading_warning("openai/clip-vit-large-patch14", _NoUnknown(), "東京の夜景")
    assert warning is not None
    assert "reads English only" in warning and "Chinese/Japanese" in warning
    assert "`zsv reindex --model siglip2-so400m`" in warning
    assert reading_warning("openai/clip-vit-large-patch14", _NoUnknown(), "a dog") is None
    # A multilingual preset reads every script: no warning.
    assert reading_warning("google/siglip2-base-patch16-224", _NoUnknown(), "東京の夜景") is None


@pytest.mark.parametrize("text", [t for t, s in SCRIPTS.items() if s != "Latin"])
def test_the_encoder_warns_for_every_script_it_cannot_read(tiny_encoder: Any, text: str) -> None:
    warning = tiny_encoder.reading_warning(text)
    assert warning is not None
    assert "\n" not in warning and "siglip2-so400m" in warning


def test_the_encoder_reads_english_without_a_warning(tiny_encoder: Any) -> None:
    assert tiny_encoder.reading_warning("A Dog on the Beach") is None
    assert tiny_encoder.reading_warning("   ") is None


def test_a_query_longer_than_the_model_reads_says_so(tiny_encoder: Any) -> None:
    assert tiny_encoder.truncation_warning("a dog on a beach") is None
    warning = tiny_encoder.truncation_warning("dog " * 2500)  # 10,000 characters
    assert warning is not None and "64 tokens" in warning
    # Cut as the reference cuts: only the first 64 tokens count.
    long = "a dog on a beach " + "cat " * 200
    tokens = tiny_encoder.tokenize([long])["input_ids"]
    assert tokens.shape == (1, 64)


# -- the warning where users see results --------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_encoder: Any, photo_paths: list[Path]) -> Any:
    engine = SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim))
    engine.index_images(photo_paths)
    return engine


def test_search_answers_and_carries_the_warning(engine: Any) -> None:
    results = engine.search("東京の夜景", k=3)
    assert len(results) == 3  # answered anyway
    assert len(results.warnings) == 1 and "siglip2-so400m" in results.warnings[0]
    assert engine.search("a dog on a beach", k=3).warnings == ()
    # A batch: each query its own warnings.
    batch = engine.search(["собака", "a cat"], k=2)
    assert [bool(r.warnings) for r in batch] == [True, False]


def test_a_long_query_is_answered_with_a_truncation_warning(engine: Any) -> None:
    results = engine.search("dog " * 2500, k=2)
    assert len(results) == 2
    assert any("64 tokens" in warning for warning in results.warnings)


@pytest.mark.parametrize("blank", ["", "   ", "\u3000\u3000", "\t\n"])
def test_an_empty_query_in_any_script_is_an_error(engine: Any, blank: str) -> None:
    with pytest.raises(InvalidInputError):
        engine.search(blank)


def test_mixed_script_and_right_to_left_queries_are_answered(engine: Any) -> None:
    for text in ["a dog كلب", "\u202ekcab\u202c a dog", "🐶 dog"]:
        assert len(engine.search(text, k=2)) == 2


@pytest.fixture(scope="module")
def photo_index(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Any, photo_paths: list[Path]
) -> Path:
    root = tmp_path_factory.mktemp("lang-index")
    (root / "photos").mkdir()
    for path in photo_paths:
        shutil.copy(path, root / "photos" / path.name)
    with SearchEngine.create(root / "index", encoder=tiny_encoder) as created:
        created.index_folder(root / "photos")
    return root / "index"


def test_zsv_search_prints_the_warning_on_stderr(
    capsys: pytest.CaptureFixture[str], photo_index: Path, tiny_model_dir: Path
) -> None:
    code, out, err = run(capsys, "search", "東京の夜景", "--index", str(photo_index), "-k", "2")
    assert code == EXIT_OK
    assert err.startswith("zsv: warning: ") and "siglip2-so400m" in err
    assert len(out.strip().splitlines()) >= 2  # the results are still printed
    code, out, err = run(capsys, "search", "a dog", "--index", str(photo_index), "-k", "2")
    assert code == EXIT_OK and "warning" not in err


def test_the_server_returns_the_warning_and_the_client_reads_it(
    photo_index: Path, tiny_encoder: Any
) -> None:
    pytest.importorskip("fastapi")
    import httpx
    from tests.helpers import open_service, start_server, stop_server

    from zeroshot_vision.server._client import ServerClient

    service = open_service(photo_index, tiny_encoder)
    live, running = start_server(service)
    try:
        answer = httpx.post(
            f"{live.url}/v1/search", json={"query": "東京の夜景", "k": 2}, timeout=30
        ).json()
        assert len(answer["results"]) == 2
        assert len(answer["warnings"]) == 1 and "siglip2-so400m" in answer["warnings"][0]
        plain = httpx.post(f"{live.url}/v1/search", json={"query": "a dog"}, timeout=30).json()
        assert plain["warnings"] == []
        with ServerClient(live.url) as client:
            found = client.search(index=None, query="собака", k=2)
        assert len(found) == 2 and found.warnings and "Cyrillic" in found.warnings[0]
    finally:
        stop_server(running)
        service.close()


# -- per-language evaluation ------------------------------------------------------------------


@pytest.fixture(scope="module")
def xm3600(tmp_path_factory: pytest.TempPathFactory, photo_paths: list[Path]) -> Path:
    from zeroshot_vision.testing import build_xm3600_sample

    return build_xm3600_sample(tmp_path_factory.mktemp("xm3600"), photo_paths)


def test_the_xm3600_layout_reads_one_pair_per_caption_grouped_by_language(xm3600: Path) -> None:
    from zeroshot_vision.eval._labelled_data import read_multilingual_pairs, read_pairs
    from zeroshot_vision.testing import SAMPLE_CAPTIONS

    dataset = read_pairs(xm3600)
    assert dataset.grouped_by == "language"
    assert dataset.sources == ("en", "de", "ja", "zh", "ar", "hi", "ru")
    assert len(dataset.pairs) == 6 * 7 and not dataset.skipped
    by_text = {pair.text: pair for pair in dataset.pairs}
    ja = by_text[SAMPLE_CAPTIONS[2]["ja"]]
    assert ja.source == "ja" and ja.image.parent == xm3600 / "images"
    only = read_multilingual_pairs(xm3600, languages=["ja", "ar"])
    assert only.sources == ("ja", "ar") and len(only.pairs) == 12


def test_broken_lines_and_missing_images_are_skips_with_line_numbers(xm3600: Path) -> None:
    from zeroshot_vision.eval._labelled_data import read_multilingual_pairs

    damaged = xm3600.parent / "damaged"
    shutil.copytree(xm3600, damaged)
    lines = (damaged / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # truncated, as a full disk leaves it
    lines.append('{"image/key": "0000000000000099", "en": {"caption": ["ghost"]}}')
    lines.append('["not", "an", "object"]')
    (damaged / "captions.jsonl").write_text("\n".join(lines), encoding="utf-8")
    dataset = read_multilingual_pairs(damaged)
    assert len(dataset.pairs) == 5 * 7
    reasons = {skip.source.rsplit(":", 1)[1]: skip.reason for skip in dataset.skipped}
    assert set(reasons) == {"2", "7", "8"}
    assert "not valid JSON" in reasons["2"] and "does not exist" in reasons["7"]


def test_json_lines_of_image_language_caption(tmp_path: Path, photo_paths: list[Path]) -> None:
    from zeroshot_vision.eval._labelled_data import read_pairs

    rows = [
        {"image": str(photo_paths[0]), "language": "ja", "caption": "宇宙飛行士"},
        {"image": str(photo_paths[1]), "language": "ar", "caption": ["فنجان قهوة", " "]},
        {"image": "missing.jpg", "language": "en", "caption": "nothing"},
        {"image": str(photo_paths[2]), "caption": "no language"},
    ]
    file = tmp_path / "captions.jsonl"
    file.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    dataset = read_pairs(file)
    assert [(p.source, p.text) for p in dataset.pairs] == [
        ("ja", "宇宙飛行士"),
        ("ar", "فنجان قهوة"),
    ]
    assert len(dataset.skipped) == 2


def test_retrieval_reports_each_language_and_their_mean(xm3600: Path, tiny_encoder: Any) -> None:
    import numpy as np

    from zeroshot_vision.eval._labelled_data import read_pairs
    from zeroshot_vision.eval._run import evaluate_retrieval

    result = evaluate_retrieval(tiny_encoder, read_pairs(xm3600))
    assert result.grouped_by == "language" and result.n_images == 6
    assert [g.name for g in result.by_source] == ["en", "de", "ja", "zh", "ar", "hi", "ru"]
    assert all(group.n == 6 for group in result.by_source)
    mean = result.group_mean
    assert mean is not None
    for i in range(3):
        expected = np.mean([group.recall[i] for group in result.by_source])
        assert mean.recall[i] == pytest.approx(expected)
    data = result.to_json()
    assert data["grouped_by"] == "language" and set(data["by_source"]) == {
        "en", "de", "ja", "zh", "ar", "hi", "ru"
    }  # fmt: skip
    assert data["mean_of_groups"]["recall@1"] == pytest.approx(mean.recall[0])


def test_zsv_eval_compares_two_models_per_language(
    xm3600: Path,
    tiny_model_dir: Path,
    tiny_clip_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    code, stdout, _ = run(
        capsys, "eval", "retrieval", "--data", str(xm3600), "--model", str(tiny_model_dir),
        "--model", str(tiny_clip_dir), "--out", str(out),
    )  # fmt: skip
    assert code == EXIT_OK
    table = [line.split() for line in stdout.splitlines()]
    assert any(row[:2] == ["language", "n"] for row in table)
    english = next(row for row in table if row and row[0] == "en")
    assert len(english) == 2 + 2 * 3  # language, n, then R@1/5/10 for each model
    assert all(cell.endswith("%") for cell in english[2:])
    languages = [row[0] for row in table if row and row[0] in {"en", "ja", "ar", "hi", "ru"}]
    assert languages == ["en", "ja", "ar", "hi", "ru"]
    assert any(row[:2] == ["mean", "(7)"] for row in table)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Per language" in report and "| ja |" in report
    assert (out / "recall_by_language.png").stat().st_size > 1000
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [m["grouped_by"] for m in data["models"]] == ["language", "language"]
