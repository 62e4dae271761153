"""The Streamlit app's pages, driven by Streamlit's AppTest, and its pure page logic.

An index is built from real photos (skimage's data folder) with the tiny random SigLIP:
the rankings mean nothing, but every path from query to rendered grid is real.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zeroshot_vision._app import ENTRY, SCRIPT, launch, streamlit_command
from zeroshot_vision._app.logic import (
    MAX_CHOICES,
    ChoiceFacet,
    RangeFacet,
    build_filter,
    clean_query,
    decode_upload,
    discover_facets,
    parse_app_args,
    parse_labels,
    result_cards,
)
from zeroshot_vision._errors import ImageLoadError, IndexNotFoundError, InvalidInputError
from zeroshot_vision._types import SearchResult
from zeroshot_vision.stores._faiss import FaissStore

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest
from tests.helpers import PLACES, build_index

APP_TIMEOUT = 120


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


@pytest.fixture(scope="module")
def photo_files(photo_paths: list[Path]) -> list[Path]:
    stems = {p.stem for p in photo_paths}
    assert stems == PLACES.keys(), f"give PLACES an entry for each photo: {sorted(stems)}"
    return photo_paths


@pytest.fixture(scope="module")
def index_dir(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, photo_files: list[Path]
) -> Path:
    return build_index(tmp_path_factory.mktemp("index") / "idx", model_dir, photo_files)


@pytest.fixture(scope="module")
def empty_index_dir(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._index import IndexFolder

    folder = tmp_path_factory.mktemp("empty") / "idx"
    dim = Encoder.from_pretrained(str(model_dir), device="cpu").dim
    IndexFolder.create(folder, model=str(model_dir), dim=dim)
    return folder


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Each test gets its own engine: AppTest runs share one process and its caches."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def app(monkeypatch: pytest.MonkeyPatch, *args: str) -> AppTest:
    """An AppTest of the real script, given ``args`` as if after ``streamlit run ... --``."""
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    return AppTest.from_file(str(SCRIPT), default_timeout=APP_TIMEOUT)


def result_ids(at: AppTest) -> list[str]:
    """The ids on the grid's "More like this" buttons, in rank order."""
    return [b.key.removeprefix("more-") for b in at.button if str(b.key).startswith("more-")]


def unescape(markdown: str) -> str:
    """Markdown source with its backslash escapes removed (the text a reader sees)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return unescape("\n".join(str(p) for p in parts))


def messages(at: AppTest, kind: str) -> str:
    return unescape("\n".join(str(e.value) for e in getattr(at, kind)))


# -- the search page ---------------------------------------------------------------------


def test_a_typed_query_shows_a_grid_of_photos(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    at = app(monkeypatch, "--index", str(index_dir)).run()
    assert not at.exception
    assert "Type what you are looking for" in messages(at, "info")
    at.slider(key="k").set_value(5)
    at.text_input(key="query").input("an astronaut in a white space suit").run()
    assert not at.exception and not at.error
    ids = result_ids(at)
    assert len(ids) == 5
    assert set(ids) <= set(PLACES)
    assert len(at.image) == 5 and all(img.value for img in at.image)
    shown = texts(at)
    assert "#1 · p " in shown and "cos " in shown
    assert re.search(r"^by \w", shown, re.M) and re.search(r"^(USA|UK|Italy), \d{4}\b", shown, re.M)
    assert "sample photo" in shown
    assert at.query_params["q"] == "an astronaut in a white space suit"


def test_a_query_in_the_url_runs_on_open(monkeypatch: pytest.MonkeyPatch, index_dir: Path) -> None:
    at = app(monkeypatch, "--index", str(index_dir))
    at.query_params["q"] = "a cup of coffee"
    at.run()
    assert not at.exception and not at.error
    assert at.text_input(key="query").value == "a cup of coffee"
    assert len(result_ids(at)) == len(PLACES)  # the default k (12) exceeds the index


def test_a_query_of_only_spaces_asks_for_words(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    at = app(monkeypatch, "--index", str(index_dir)).run()
    at.text_input(key="query").input("    ").run()
    assert not at.exception and not at.error
    assert "only spaces" in messages(at, "info")
    assert result_ids(at) == []
    assert "q" not in at.query_params


def test_min_probability_slider_drops_unlikely_photos(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    from zeroshot_vision._engine import SearchEngine

    query = "a photo of a cat"
    probabilities = [r.probability for r in SearchEngine.open(index_dir).search(query, k=20)]
    assert all(p is not None for p in probabilities)
    cut = round(float(np.median([p for p in probabilities if p is not None])), 2)
    expected = sum(1 for p in probabilities if p is not None and p >= cut)
    assert 0 < expected < len(probabilities)  # the cut-off really splits the photos

    at = app(monkeypatch, "--index", str(index_dir)).run()
    at.select_slider(key="min_probability").set_value(cut)
    at.text_input(key="query").input(query).run()
    assert not at.exception
    assert len(result_ids(at)) == expected

    at.select_slider(key="min_probability").set_value(1.0).run()
    assert result_ids(at) == []
    assert "Lower the minimum probability" in messages(at, "info")


def test_filters_are_built_from_the_metadata_present(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    at = app(monkeypatch, "--index", str(index_dir)).run()
    country = at.multiselect(key="filter-country")
    assert country.options == ["Italy", "UK", "USA"]
    years = [year for _, year, _ in PLACES.values()]
    assert at.slider(key="filter-year").value == (min(years), max(years))
    # Free text and paths are never offered as filters.
    assert [m.key for m in at.multiselect] == ["filter-country", "filter-photographer"]

    at.text_input(key="query").input("a photo").run()
    country.set_value(["Italy"]).run()
    assert not at.exception
    assert sorted(result_ids(at)) == ["coffee", "motorcycle_left"]

    country.set_value([]).run()
    at.slider(key="filter-year").set_value((2010, max(years))).run()
    expected = sorted(stem for stem, (_, year, _) in PLACES.items() if year >= 2010)
    assert 0 < len(expected) < len(PLACES)
    assert sorted(result_ids(at)) == expected


def test_negative_prompt_is_passed_to_the_search(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    from zeroshot_vision._engine import SearchEngine

    seen: list[str | None] = []
    original = SearchEngine.search

    def spy(self: SearchEngine, query: str, *args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("negative"))  # type: ignore[arg-type]
        return original(self, query, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SearchEngine, "search", spy)
    at = app(monkeypatch, "--index", str(index_dir)).run()
    at.text_input(key="negative").input("  people ")
    at.text_input(key="query").input("a beach").run()
    assert not at.exception and result_ids(at)
    assert seen[-1] == "people"


def test_more_like_this_searches_by_image_and_leaves_the_photo_out(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    at = app(monkeypatch, "--index", str(index_dir)).run()
    at.text_input(key="query").input("a rocket").run()
    first = result_ids(at)[0]
    at.button(key=f"more-{first}").click().run()
    assert not at.exception and not at.error
    assert f"More like `{first}`" in [s.value for s in at.subheader]
    similar = result_ids(at)
    assert first not in similar and len(similar) == len(PLACES) - 1
    assert "p " not in " ".join(s for s in texts(at).split("\n") if s.startswith("**#"))

    next(b for b in at.button if b.label == "Back to the text search").click().run()
    assert result_ids(at)[0] == first


def test_missing_index_is_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = app(monkeypatch, "--index", str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert "No index at" in messages(at, "error")
    assert "zsv index SOURCE --index" in messages(at, "error")


def test_empty_index_says_so(monkeypatch: pytest.MonkeyPatch, empty_index_dir: Path) -> None:
    at = app(monkeypatch, "--index", str(empty_index_dir)).run()
    assert not at.exception and not at.error
    assert "is empty" in messages(at, "info")


def test_a_model_that_cannot_be_loaded_is_a_message(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    at = app(monkeypatch, "--index", str(index_dir), "--model", str(broken)).run()
    assert not at.exception
    assert "The model could not be loaded" in messages(at, "error")


def test_a_store_failing_mid_page_is_a_message(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    from zeroshot_vision._errors import StoreError

    def unreachable(self: FaissStore) -> Iterator[str]:
        raise StoreError("the store did not answer")

    monkeypatch.setattr(FaissStore, "ids", unreachable)
    at = app(monkeypatch, "--index", str(index_dir)).run()
    assert not at.exception
    assert "the store did not answer" in messages(at, "error")


def test_unknown_app_arguments_are_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(monkeypatch, "--indx", "x").run()
    assert not at.exception
    assert "unknown app arguments: --indx x" in messages(at, "error")


# -- the classify and index pages --------------------------------------------------------


def png_bytes(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def test_classify_an_upload_without_an_index(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, photo_files: list[Path]
) -> None:
    at = app(monkeypatch, "--model", str(model_dir))
    at.query_params["page"] = "classify"
    at.run()
    assert not at.exception and not at.error
    assert at.radio(key="classify-source").options == ["Upload an image"]
    at.text_area[0].input("a cat, a dog\na rocket, a cat")
    at.file_uploader(key="upload").set_value(("cat.png", png_bytes(photo_files[1]), "image/png"))
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert sorted(table["label"]) == ["a cat", "a dog", "a rocket"]
    assert all(0.0 <= p <= 1.0 for p in table["probability"])
    assert "Independent probabilities" in texts(at)

    at.toggle(key="softmax").set_value(True).run()
    softmax = at.dataframe[0].value
    assert softmax["probability"].sum() == pytest.approx(1.0, abs=1e-6)
    assert "Softmax shares" in texts(at)


def test_classify_refuses_a_file_that_is_not_an_image(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    at = app(monkeypatch, "--model", str(model_dir))
    at.query_params["page"] = "classify"
    at.run()
    at.file_uploader(key="upload").set_value(("evil.png", b"not an image at all", "image/png"))
    at.run()
    assert not at.exception
    assert "That file cannot be used" in messages(at, "error")
    assert not at.dataframe


def test_classify_an_indexed_photo(monkeypatch: pytest.MonkeyPatch, index_dir: Path) -> None:
    at = app(monkeypatch, "--index", str(index_dir))
    at.query_params["page"] = "classify"
    at.run()
    at.radio(key="classify-source").set_value("Pick an indexed photo").run()
    assert not at.exception and not at.error
    assert sorted(at.selectbox[0].options) == sorted(PLACES)
    assert len(at.dataframe[0].value) == 3


def test_index_page_shows_what_is_indexed(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path, model_dir: Path
) -> None:
    at = app(monkeypatch, "--index", str(index_dir))
    at.query_params["page"] = "index"
    at.run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Photos": str(len(PLACES)), "Model": model_dir.name, "Dimension": "32"}
    assert "FaissStore" in texts(at)
    assert len(at.image) == len(PLACES)


# -- safety and page logic ---------------------------------------------------------------


def test_uploads_are_size_limited_and_decompression_bombs_refused() -> None:
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buffer, format="PNG")  # small file, 16 Mpx
    bomb = buffer.getvalue()
    assert len(bomb) < 100_000
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        decode_upload(bomb, max_pixels=1_000_000)
    with pytest.raises(ImageLoadError, match="limit is"):
        decode_upload(b"x" * 2048, max_bytes=1024)
    with pytest.raises(ImageLoadError, match="empty"):
        decode_upload(b"")
    assert decode_upload(bomb).size == (4000, 4000)


def test_query_and_label_parsing() -> None:
    assert clean_query("  a dog ") == "a dog"
    assert clean_query("   ") is None and clean_query(None) is None
    assert parse_labels("a cat, a dog\n\n a cat ,,\na car") == ["a cat", "a dog", "a car"]


def test_facets_and_filters() -> None:
    rows = [
        {"country": "Iceland", "year": 2019, "path": "/a", "keywords": ["ice", "sea"]},
        {"country": "Chile", "year": 2021, "path": "/b", "keywords": ["sea"]},
        {"country": "Chile", "year": None, "path": "/c", "flag": True, "score": 1.5},
    ]
    facets = discover_facets(rows)
    assert facets == [
        ChoiceFacet(key="country", options=("Chile", "Iceland")),
        ChoiceFacet(key="keywords", options=("ice", "sea")),
        RangeFacet(key="year", low=2019.0, high=2021.0, integer=True),
    ]
    assert build_filter(facets) is None
    assert build_filter(facets, ranges={"year": (2019, 2021)}) is None
    assert build_filter(
        facets, choices={"country": ["Chile", "Mars"]}, ranges={"year": (2020, 2021)}
    ) == {"country": {"$in": ["Chile"]}, "year": {"$gte": 2020}}
    many = [{"city": f"c{i}", "photo_id": str(i)} for i in range(MAX_CHOICES + 1)]
    assert discover_facets(many) == []


def test_result_cards_show_rank_probability_and_metadata() -> None:
    results = [
        SearchResult(
            id="a",
            score=0.25,
            probability=0.875,
            metadata={
                "description": "A fox",
                "photographer": "Ann",
                "location": "Reykjavik, Iceland",
                "country": "Iceland",
                "year": 2020,
            },
        ),
        SearchResult(id="b", score=0.5, probability=None, metadata={}),
    ]
    first, second = result_cards(results)
    assert first.heading == "#1 · p 0.875 · cos 0.250"
    assert first.details == ("A fox", "by Ann", "Reykjavik, Iceland, 2020")
    assert second.heading == "#2 · cos 0.500" and second.details == ()


def test_app_arguments() -> None:
    args = parse_app_args(["--index", "idx", "--model", "m", "--device", "cpu"])
    assert (args.index, args.model, args.device) == (Path("idx"), "m", "cpu")
    assert parse_app_args([]).index is None
    with pytest.raises(ValueError, match="unknown"):
        parse_app_args(["--port", "1"])
    with pytest.raises(ValueError, match="bad app arguments"):
        parse_app_args(["--index"])


def test_launch_command_binds_loopback_by_default(tmp_path: Path) -> None:
    command = streamlit_command(tmp_path)
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(ENTRY)]
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.port") + 1] == "8501"
    assert command[command.index("--server.headless") + 1] == "true"
    assert command[command.index("--server.enableStaticServing") + 1] == "false"
    assert command[command.index("--") :] == ["--", "--index", str(tmp_path.resolve())]
    other = streamlit_command(None, host="0.0.0.0", port=9000, model="m")
    assert other[other.index("--server.address") + 1] == "0.0.0.0"
    assert other[other.index("--") :] == ["--", "--model", "m"]
    with pytest.raises(InvalidInputError):
        streamlit_command(tmp_path, port=70000)
    with pytest.raises(InvalidInputError):
        streamlit_command(tmp_path, host=" ")


def test_launch_refuses_a_missing_index_before_starting(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="zsv index SOURCE"):
        launch(tmp_path / "missing", wait=False)


def test_zsv_app_passes_its_options_to_launch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import subprocess

    from zeroshot_vision import _cli as cli

    calls: list[tuple[object, dict[str, object]]] = []

    def fake_launch(index_dir: object, **options: object) -> subprocess.CompletedProcess[bytes]:
        calls.append((index_dir, options))
        return subprocess.CompletedProcess([], returncode=0)

    monkeypatch.setattr("zeroshot_vision._app.launch", fake_launch)
    assert cli.main(["app", "--index", str(tmp_path)]) == 0
    assert calls[-1] == (
        str(tmp_path),
        {"host": "127.0.0.1", "port": 8501, "model": None, "device": None},
    )
    assert cli.main(["app", "--index", str(tmp_path), "--port", "9000", "--host", "0.0.0.0"]) == 0
    assert calls[-1][1]["port"] == 9000 and calls[-1][1]["host"] == "0.0.0.0"


def test_zsv_app_reports_a_missing_index_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zeroshot_vision import _cli as cli

    assert cli.main(["app", "--index", str(tmp_path / "missing")]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no index folder" in err and "Traceback" not in err


@pytest.mark.slow
def test_stopping_zsv_app_stops_the_server(tmp_path: Path, empty_index_dir: Path) -> None:
    """SIGTERM to the launching process must not leave Streamlit running, orphaned."""
    import signal
    import socket
    import subprocess
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    health = f"http://127.0.0.1:{port}/_stcore/health"

    def serving() -> bool:
        try:
            return httpx.get(health, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    code = f"from zeroshot_vision._app import launch; launch({str(empty_index_dir)!r}, port={port})"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(120):
            if serving() or parent.poll() is not None:
                break
            time.sleep(0.5)
        assert serving(), "the app did not start within a minute"
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
        for _ in range(40):
            if not serving():
                break
            time.sleep(0.25)
        assert not serving(), "the Streamlit server outlived zsv app"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)


# -- hostile text and files ----------------------------------------------------------------

HOSTILE = (
    "![x](http://evil.example/px.png) <img src=x onerror=alert(1)> [link](javascript:alert(1))"
    " <script>alert(1)</script> :red[red] $x^2$ &lt;b&gt; # heading\n\n- item"
)


def rendered_html(markdown: str) -> str:
    """What a CommonMark renderer with raw HTML switched on makes of ``markdown``."""
    markdown_it = pytest.importorskip("markdown_it")
    return str(markdown_it.MarkdownIt("commonmark", {"html": True}).render(markdown))


def assert_inert(markdown: str) -> None:
    """No tag but paragraphs, bold, code and line breaks; no entity turned into markup."""
    html = rendered_html(markdown)
    tags = set(re.findall(r"<\s*/?\s*([a-zA-Z0-9]+)", html))
    assert tags <= {"p", "strong", "code", "br"}, (markdown, html)
    assert "$x^2$" not in unescape(markdown) or "\\$" in markdown
    assert ":red[" not in markdown


def test_markdown_escaping_leaves_text_literal() -> None:
    from zeroshot_vision._app.logic import escape_markdown, inline_code

    escaped = escape_markdown(HOSTILE)
    assert_inert(escaped)
    assert unescape(escaped) == " ".join(HOSTILE.split())  # shown as typed, on one line
    for text in ["plain", "`tick`", "a``b", " lead", "trail`", "line\n\nbreak<img>", ""]:
        code = inline_code(text)
        html = rendered_html(code)
        assert re.fullmatch(r"<p><code>[^<]*</code></p>\n", html), (text, html)
    assert inline_code("a``b") == "```a``b```" and inline_code("`x") == "`` `x ``"


@pytest.fixture(scope="module")
def hostile_index_dir(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, photo_files: list[Path]
) -> Path:
    """An index whose ids, metadata keys and values try to inject Markdown and HTML."""
    from zeroshot_vision._index import IndexFolder

    folder = tmp_path_factory.mktemp("hostile") / "idx"
    store = IndexFolder.create(folder, model=str(model_dir), dim=32).open_store()
    ids = ["`x` ![i](http://evil.example/id.png)", "**bold** <b>id</b>"]
    metadata = [
        {
            "path": str(photo_files[0]),
            "description": HOSTILE,
            "photographer": "<img src=x onerror=alert(2)>",
            "country": "![c](http://evil.example/c.png)",
            "![k](http://evil.example/k.png)": "one",
        },
        {
            "path": str(photo_files[1]),
            "description": "[click](http://evil.example)",
            "country": "<b>UK</b>",
            "![k](http://evil.example/k.png)": "two",
        },
    ]
    store.upsert(ids, np.random.default_rng(0).standard_normal((2, 32)), metadata)
    store.commit()
    return folder


def test_index_text_is_shown_as_text_never_as_markdown_or_html(
    monkeypatch: pytest.MonkeyPatch, hostile_index_dir: Path
) -> None:
    at = app(monkeypatch, "--index", str(hostile_index_dir))
    at.query_params["q"] = "anything"
    at.run()
    assert not at.exception and not at.error
    assert len(result_ids(at)) == 2 and len(at.image) == 2
    sources = [
        *(m.value for m in at.markdown),
        *(c.value for c in at.caption),
        *(s.value for s in at.subheader),
        *(w.label for w in [*at.multiselect, *at.slider]),
    ]
    for source in sources:
        assert_inert(str(source))
    shown = texts(at)
    assert "![x](http://evil.example/px.png)" in shown  # visible, as typed
    assert "by <img src=x onerror=alert(2)>" in shown
    labels = [unescape(m.label) for m in at.multiselect]
    assert "![k](http://evil.example/k.png)" in labels

    # "More like this" on an id full of Markdown; the index page shows ids as headings.
    at.button(key=f"more-{result_ids(at)[0]}").click().run()
    assert not at.exception and not at.error
    for subheader in at.subheader:
        assert_inert(str(subheader.value))
    at = app(monkeypatch, "--index", str(hostile_index_dir))
    at.query_params["page"] = "index"
    at.run()
    assert not at.exception and not at.error
    for source in [*(m.value for m in at.markdown), *(c.value for c in at.caption)]:
        assert_inert(str(source))


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims ``width`` x ``height`` pixels."""
    import struct
    import zlib

    png = _encoded(Image.new("RGB", (8, 8)), "PNG")
    header = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(header))
    return png[:8] + struct.pack(">I", 13) + header + crc + png[33:]


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 40), color) for color in ("red", "green", "blue")]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])


UPLOADS = {
    "bomb.png": (_png_claiming(50_000, 50_000), "possible decompression bomb"),
    "notes.png": (b"these are my notes, not a picture\n" * 20, "it is not an image"),
    "cut.jpg": (_encoded(Image.new("RGB", (300, 300), "red"), "JPEG")[:700], "truncated"),
    "anim.gif": (_animated_gif(), None),
    "cmyk.jpg": (_encoded(Image.new("CMYK", (40, 40), (0, 255, 0, 0)), "JPEG"), None),
    "deep.png": (_encoded(Image.new("I;16", (40, 40)), "PNG"), None),
    "big.png": (b"\0" * (11 * 2**20), "the limit is 10 MiB"),
}


@pytest.mark.parametrize("name", list(UPLOADS))
def test_awkward_uploads_classify_or_get_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, name: str
) -> None:
    data, problem = UPLOADS[name]
    at = app(monkeypatch, "--model", str(model_dir))
    at.query_params["page"] = "classify"
    at.run()
    at.file_uploader(key="upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    if problem is None:
        assert not at.error and len(at.dataframe[0].value) == 3
    else:
        message = messages(at, "error")
        assert message.startswith("That file cannot be used: ") and problem in message
        assert "BytesIO" not in message and "DOS attack" not in message
        assert message.endswith(".") and not message.endswith("..")
        assert not at.dataframe


@pytest.mark.parametrize(
    "query", ["日本語の猫 🐱 café", "a" * 10_000, "<script>alert(1)</script> ![x](http://e/)"]
)
def test_odd_url_queries_search_without_errors(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path, query: str
) -> None:
    at = app(monkeypatch, "--index", str(index_dir))
    at.query_params["q"] = query
    at.run()
    assert not at.exception and not at.error
    assert len(result_ids(at)) == len(PLACES)
    assert at.text_input(key="query").value == query


def test_k_slider_extremes_and_an_index_without_metadata(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_dir: Path, photo_files: list[Path]
) -> None:
    from zeroshot_vision._engine import SearchEngine

    folder = tmp_path / "bare"
    with SearchEngine.create(folder, model=str(model_dir), device="cpu") as engine:
        assert engine.index_images(photo_files).ok  # metadata: only the path
    at = app(monkeypatch, "--index", str(folder)).run()
    assert not at.multiselect and [s.key for s in at.slider] == ["k"]
    at.slider(key="k").set_value(1)
    at.text_input(key="query").input("a rocket").run()
    assert not at.exception and not at.error and len(result_ids(at)) == 1
    at.slider(key="k").set_value(50).run()
    assert not at.exception and len(result_ids(at)) == len(PLACES)


def test_an_index_whose_model_folder_was_deleted_is_a_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_dir: Path, photo_files: list[Path]
) -> None:
    import shutil

    model_copy = tmp_path / "model"
    shutil.copytree(model_dir, model_copy)
    folder = build_index(tmp_path / "idx", model_copy, photo_files)
    shutil.rmtree(model_copy)
    for page in ("search", "classify", "index"):
        at = app(monkeypatch, "--index", str(folder))
        at.query_params["page"] = page
        at.run()
        assert not at.exception
        assert "The model could not be loaded" in messages(at, "error")
        assert str(model_copy) in messages(at, "error")


def test_sample_ids_are_the_smallest_in_sort_order() -> None:
    from zeroshot_vision._app.logic import sample_ids

    class Endless(FaissStore):
        def ids(self) -> Iterator[str]:
            return (f"id-{i:06d}" for i in range(200_000, 0, -1))

    assert sample_ids(Endless(2), 3) == ["id-000001", "id-000002", "id-000003"]


def test_upload_errors_are_the_matching_leaves() -> None:
    from zeroshot_vision._errors import ImageDecodeError, ImageTooLargeError

    with pytest.raises(ImageDecodeError, match="it is not an image"):
        decode_upload(b"plain text, not a picture", name="notes.png")
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_upload(_encoded(Image.new("RGB", (300, 300), "red"), "JPEG")[:700])
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_upload(b"")
    with pytest.raises(ImageTooLargeError, match="possible decompression bomb"):
        decode_upload(_png_claiming(50_000, 50_000))
    with pytest.raises(ImageTooLargeError, match="limit is"):
        decode_upload(b"x" * 2048, max_bytes=1024)


def test_a_running_app_sees_what_zsv_index_adds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_dir: Path, photo_files: list[Path]
) -> None:
    """The app used to keep the engine it first opened: new photos never appeared."""
    from zeroshot_vision._app import streamlit_app
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._index import index_version

    folder = tmp_path / "live"
    with SearchEngine.create(folder, model=str(model_dir), device="cpu") as engine:
        engine.index_images(photo_files[:2])
    before = index_version(folder)
    at = app(monkeypatch, "--index", str(folder)).run()
    at.text_input(key="query").input("a photo").run()
    assert not at.exception and len(result_ids(at)) == 2
    encoder = streamlit_app.load_encoder(str(model_dir.resolve()), None)

    with SearchEngine.open(folder, encoder=encoder) as engine:  # as `zsv index` would
        engine.index_images(photo_files[2:5])
    assert index_version(folder) != before
    at.run()
    assert not at.exception and len(result_ids(at)) == 5
    # The model was not loaded again for the new version of the index.
    assert streamlit_app.load_encoder(str(model_dir.resolve()), None) is encoder


# -- issue 21: the search page as a photo library's ------------------------------------


def test_search_by_an_uploaded_photo_on_the_search_page(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path, photo_files: list[Path]
) -> None:
    at = app(monkeypatch, "--index", str(index_dir)).run()
    chelsea = next(p for p in photo_files if p.stem == "chelsea")
    at.file_uploader(key="search-upload").set_value(("mine.png", png_bytes(chelsea), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert result_ids(at)[0] == "chelsea"  # the same photo, uploaded, is its own best match
    assert any("Photos like" in str(h.value) for h in at.subheader)
    at.file_uploader(key="search-upload").set_value(("bad.png", b"not an image", "image/png"))
    at.run()
    assert not at.exception and "The search failed" in messages(at, "error")


def test_show_more_goes_beyond_k(monkeypatch: pytest.MonkeyPatch, index_dir: Path) -> None:
    from zeroshot_vision._app.logic import MAX_RESULTS, PAGE_SIZE, more_results

    at = app(monkeypatch, "--index", str(index_dir)).run()
    at.slider(key="k").set_value(2)
    at.text_input(key="query").input("a photo").run()
    assert len(result_ids(at)) == 2
    at.button(key="show-more").click().run()
    assert not at.exception and len(result_ids(at)) == len(PLACES)  # all there are
    assert not [b for b in at.button if b.key == "show-more"]  # nothing more to show
    assert more_results(50) == 50 + PAGE_SIZE and more_results(MAX_RESULTS) == MAX_RESULTS


def test_open_shows_the_original_photo_only_for_indexed_ids(
    monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    at = app(monkeypatch, "--index", str(index_dir)).run()
    at.text_input(key="query").input("a rocket").run()
    first = result_ids(at)[0]
    thumbnails = len(at.image)
    at.button(key=f"open-{first}").click().run()
    assert not at.exception and len(at.image) == thumbnails + 1
    at.button(key="close-original").click().run()
    assert len(at.image) == thumbnails
    at.session_state["original"] = "../../etc/passwd"  # not an id of the index
    at.run()
    assert "no image file" in messages(at, "warning")


def test_the_probability_control_reaches_fine_values() -> None:
    from zeroshot_vision._app.logic import PROBABILITY_STEPS

    fine = [p for p in PROBABILITY_STEPS if 0 < p <= 0.05]
    assert fine[0] == 0.001 and len(fine) >= 10
    assert tuple(sorted(set(PROBABILITY_STEPS))) == PROBABILITY_STEPS
    assert PROBABILITY_STEPS[0] == 0.0 and PROBABILITY_STEPS[-1] == 1.0


def test_the_loading_bar_names_the_step_under_way() -> None:
    from zeroshot_vision._app.logic import loading_step
    from zeroshot_vision._types import Progress

    shown = [loading_step(Progress(task="load", total=3, done=done)) for done in range(4)]
    assert shown == [
        (0.0, "reading the weights"),
        (1 / 3, "placing them on the device"),
        (2 / 3, "warming up"),  # two of three steps finished: not ready yet
        (1.0, "ready"),
    ]
    assert (
        loading_step(Progress(task="load", total=None, done=1))[1] == "placing them on the device"
    )
    assert loading_step(Progress(task="load", total=3, done=7)) == (1.0, "ready")


def test_an_original_is_served_with_its_image_type() -> None:
    from zeroshot_vision._app.logic import original_mime

    assert original_mime(Path("a/cat.JPG")) == "image/jpeg"
    assert original_mime(Path("cat.png")) == "image/png"
    assert original_mime(Path("cat.tiff")) == "image/tiff"
    # Not an image type, or none known: the browser saves it instead of rendering it.
    assert original_mime(Path("cat.html")) == "application/octet-stream"
    assert original_mime(Path("cat")) == "application/octet-stream"
