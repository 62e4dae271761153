"""The Streamlit script: search, classify and index pages.

Run through ``zsv app --index DIR`` (or :func:`zeroshot_vision._app.launch`), which calls
``streamlit run`` on this file with ``-- --index DIR [--model M] [--device D]``. The script
only lays out widgets; what it computes lives in :mod:`zeroshot_vision._app.logic`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from zeroshot_vision._app.logic import (
    MAX_RESULTS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    PROBABILITY_STEPS,
    AppArgs,
    ChoiceFacet,
    Facet,
    RangeFacet,
    ResultCard,
    ask_view,
    build_filter,
    clean_query,
    decode_upload,
    discover_facets,
    escape_markdown,
    frame_thumbnail_jpeg,
    inline_code,
    iter_metadata,
    loading_step,
    more_results,
    original_mime,
    parse_app_args,
    parse_labels,
    result_cards,
    sample_ids,
    thumbnail_jpeg,
    video_mime,
    video_player_html,
)
from zeroshot_vision._errors import (
    ImageLoadError,
    IndexNotFoundError,
    MissingDependencyError,
    ModelLoadError,
    ZeroshotVisionError,
)
from zeroshot_vision._hybrid import check_mode
from zeroshot_vision._images import load_image
from zeroshot_vision._index.folder import index_version
from zeroshot_vision._photos import image_path_for_id, moment_for_id
from zeroshot_vision._results import clock

if TYPE_CHECKING:
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._types import SearchResult

__all__ = [
    "explain_load_error",
    "load_classifier",
    "load_classifier_or_explain",
    "load_encoder",
    "load_engine",
    "load_facets",
    "load_thumbnail",
    "main",
    "open_index",
    "pick_page",
    "range_slider",
    "show_ask_page",
    "show_classify_page",
    "show_filters",
    "show_grid",
    "show_index_page",
    "show_original",
    "show_search_page",
    "shown_count",
]

PAGES = ("Search", "Classify", "Index", "Ask")
# The search modes offered: auto is hybrid where the index has a text side. (A string
# here would be rendered: Streamlit shows a script's bare expressions.)
SEARCH_MODES = {"auto": "Looks and words", "vector": "Looks only", "text": "Words only"}
GRID_COLUMNS = 4
CARD_HEIGHT = 430
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif"]
INDEX_SAMPLE = 8
PICKABLE_IDS = 500
DEFAULT_LABELS = "a photo of a cat\na photo of a person\na photo of a landscape"


@st.cache_resource(show_spinner="Loading the index…", max_entries=2)
def load_engine(
    index_dir: str, model: str | None, device: str | None, version: str = ""
) -> SearchEngine:
    """The engine for an index folder as of ``version`` (see :func:`index_version`).

    A commit by ``zsv index`` changes the version, so the next page run opens the index
    again and shows the new photos; the model is loaded once (:func:`load_encoder`).
    """
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._index import IndexFolder

    folder = IndexFolder.open(index_dir)
    encoder = load_encoder(model or folder.manifest.model, device)
    return SearchEngine.open(index_dir, encoder=encoder)


@st.cache_resource(show_spinner=False)
def load_encoder(model: str, device: str | None) -> Encoder:
    """The model of an index, loaded once per process whatever the index's version.

    The first visit waits on it (tens of seconds for so400m on a CPU): a progress bar
    names the model and the step (reading the weights, placing them, warming up), then
    goes away.
    """
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._types import Progress

    name = Path(model).name or model
    bar = st.progress(0.0, text=f"Loading the model {name}… (once per server start)")

    def advance(progress: Progress) -> None:
        fill, step = loading_step(progress)
        bar.progress(fill, text=f"Loading the model {name}: {step}")

    try:
        return Encoder.from_pretrained(model, device=device, progress=advance)
    finally:
        bar.empty()


@st.cache_resource(show_spinner="Loading the model…")
def load_classifier(model: str | None, device: str | None) -> Encoder:
    """The encoder for classifying without an index: ``--model``, else ``$ZSV_MODEL``."""
    from zeroshot_vision._encoder import Encoder

    return Encoder.from_pretrained(model, device=device)


@st.cache_resource(show_spinner="Reading the index's metadata…")
def load_facets(index_dir: str, _engine: SearchEngine) -> list[Facet]:
    """The filters the index's metadata allows, computed once per index."""
    return discover_facets(iter_metadata(_engine.store))


@st.cache_data(max_entries=4096, show_spinner=False)
def load_thumbnail(index_dir: str, image_id: str, _engine: SearchEngine) -> bytes | None:
    """A JPEG thumbnail of an indexed image (or of a video frame's moment), or ``None``
    when it cannot be shown."""
    path = image_path_for_id(_engine.store, image_id, folder=_engine.folder)
    if path is None:
        moment = moment_for_id(_engine.store, image_id, folder=_engine.folder)
        if moment is None:
            return None
        try:
            return frame_thumbnail_jpeg(*moment)
        except (ImageLoadError, MissingDependencyError):
            return None
    try:
        return thumbnail_jpeg(path)
    except ImageLoadError:
        return None


def explain_load_error(exc: ZeroshotVisionError, args: AppArgs) -> str:
    """A one-paragraph message (Markdown) for an engine that could not be loaded."""
    if isinstance(exc, IndexNotFoundError):
        return (
            f"No index at {inline_code(args.index)}. Build one with "
            f"{inline_code(f'zsv index SOURCE --index {args.index}')} and reload this page."
        )
    if isinstance(exc, ModelLoadError):
        return f"The model could not be loaded: {escape_markdown(exc)}"
    if isinstance(exc, MissingDependencyError):
        return escape_markdown(exc)
    return f"The index could not be opened: {escape_markdown(exc)}"


def open_index(args: AppArgs) -> SearchEngine | None:
    """The index's engine, or ``None`` after showing why it is unavailable."""
    if args.index is None:
        return None
    try:
        return load_engine(str(args.index), args.model, args.device, index_version(args.index))
    except ZeroshotVisionError as exc:
        st.error(explain_load_error(exc, args))
        return None


def pick_page() -> str:
    """The page chosen in the sidebar, kept in the URL as ``?page=``."""
    wanted = st.query_params.get("page", PAGES[0]).capitalize()
    if "page" not in st.session_state:
        st.session_state.page = wanted if wanted in PAGES else PAGES[0]
    page = st.sidebar.radio("Page", PAGES, key="page") or PAGES[0]
    if page == PAGES[0]:
        if "page" in st.query_params:
            del st.query_params["page"]
    else:
        st.query_params["page"] = page.lower()
    return page


def show_search_page(engine: SearchEngine | None, args: AppArgs) -> None:
    """The query box, the filters and the result grid."""
    st.title("Search photos")
    if engine is None:
        if args.index is None:
            st.info("No index was given. Start the app with `zsv app --index DIR` to search.")
        return
    if len(engine.store) == 0:
        st.info(
            f"The index at {inline_code(args.index)} is empty. Add photos with "
            f"{inline_code(f'zsv index SOURCE --index {args.index}')}."
        )
        return

    if "query" not in st.session_state:
        st.session_state.query = st.query_params.get("q", "")
    raw_query = (
        st.text_input(
            "What are you looking for?", key="query", placeholder="a dog running on a beach"
        )
        or ""
    )
    query = clean_query(raw_query)
    if query is None:
        if "q" in st.query_params:
            del st.query_params["q"]
    else:
        st.query_params["q"] = query

    with st.sidebar:
        st.header("Search options")
        k = st.slider("Results (k)", min_value=1, max_value=50, value=12, key="k")
        min_probability = st.select_slider(
            "Minimum probability",
            options=PROBABILITY_STEPS,
            value=0.0,
            format_func=lambda value: f"{value:g}",
            key="min_probability",
            help="SigLIP's probabilities are calibrated, so a cut-off means something; "
            "fine steps below 0.05, where good matches often lie.",
        )
        negative = clean_query(
            st.text_input("Not (negative prompt)", key="negative", placeholder="people")
        )
        mode = st.radio(
            "Match",
            options=SEARCH_MODES,
            format_func=SEARCH_MODES.get,
            key="mode",
            help="Words: the text in photos, their places, captions and file names "
            "(indexes made with a text side). Both rankings are fused by default.",
        )
        index_key = f"{args.index}@{index_version(str(args.index))}"  # new facets per commit
        search_filter = show_filters(load_facets(index_key, engine))

    upload = st.file_uploader(
        "…or find photos like an image of yours",
        type=UPLOAD_TYPES,
        key="search-upload",
        max_upload_size=MAX_UPLOAD_BYTES // (1024 * 1024),
    )
    k = shown_count(k, query, similar_to=st.session_state.get("similar_to"), upload=upload)
    similar_to = st.session_state.get("similar_to")
    results: list[SearchResult]
    try:
        if similar_to is None and upload is not None:
            image = decode_upload(upload.getvalue(), name=upload.name)
            st.subheader(f"Photos like {inline_code(upload.name)}")
            with st.spinner("Searching…"):
                results = engine.search_by_image(image, k=k, filter=search_filter)
        elif similar_to is not None:
            st.subheader(f"More like {inline_code(similar_to)}")
            st.button("Back to the text search", on_click=_clear_similar)
            with st.spinner("Searching…"):
                results = engine.search_by_id(similar_to, k=k, filter=search_filter)
        elif query is None:
            if raw_query:
                st.info("The query is only spaces. Type some words to search.")
            else:
                st.info("Type what you are looking for, for example *a dog on a beach*.")
            return
        else:
            with st.spinner("Searching…"):
                results = engine.search(
                    query,
                    k=k,
                    filter=search_filter,
                    min_probability=min_probability or None,
                    negative=negative,
                    mode=None if mode == "auto" else check_mode(mode),
                )
    except KeyError:
        _clear_similar()
        st.error(f"{inline_code(similar_to)} is no longer in the index. Search again.")
        return
    except ZeroshotVisionError as exc:
        st.error(f"The search failed: {escape_markdown(exc)}")
        return
    for warning in getattr(results, "warnings", ()):
        st.warning(escape_markdown(warning))
    if not results:
        st.info(
            "No photo matches. Lower the minimum probability or loosen the filters."
            if similar_to is None
            else "No other photo matches these filters."
        )
        return
    show_original(engine)
    show_grid(engine, str(args.index), result_cards(results), more_like_this=True)
    if len(results) == k and k < MAX_RESULTS:
        st.button("Show more", key="show-more", on_click=_show_more, args=(k,))


def shown_count(k: int, query: str | None, *, similar_to: object, upload: object) -> int:
    """How many results to show: ``k``, or more after "Show more" for the same search."""
    search = (query, similar_to, getattr(upload, "file_id", None), k)
    if st.session_state.get("more-for") != search[:3]:
        st.session_state["more-for"] = search[:3]
        st.session_state["more-k"] = k
    return max(k, int(st.session_state.get("more-k", k)))


def _show_more(shown: int) -> None:
    st.session_state["more-k"] = more_results(shown)


def _open_original(image_id: str) -> None:
    st.session_state.original = image_id


def _close_original() -> None:
    st.session_state.pop("original", None)


def _media_url(video: Path) -> str:
    """Where the app serves ``video`` (Streamlit's media files, as ``st.video`` does: kept
    while a run shows it, dropped after)."""
    from streamlit import runtime

    manager = runtime.get_instance().media_file_mgr
    url: str = manager.add(str(video), video_mime(video), "zsv-original-video")
    return url


def show_original(engine: SearchEngine) -> None:
    """The full photo asked for with "Open": only a file the index holds is read."""
    image_id = st.session_state.get("original")
    if image_id is None:
        return
    path = image_path_for_id(engine.store, image_id, folder=engine.folder)
    with st.container(border=True, key="original"):
        st.button("Close", key="close-original", on_click=_close_original)
        moment = (
            None
            if path is not None
            else moment_for_id(engine.store, image_id, folder=engine.folder)
        )
        if moment is not None:
            # A video frame: the video, playing from its moment (the browser seeks there).
            video, seconds = moment
            st.html(video_player_html(_media_url(video), seconds))
            st.caption(escape_markdown(f"{video} @ {clock(seconds)}"))
            return
        if path is None:
            st.warning(f"{inline_code(image_id)}: no image file")
            return
        try:
            st.image(load_image(path), caption=str(path), width="stretch")
        except ImageLoadError as exc:
            st.warning(f"{inline_code(image_id)}: {escape_markdown(exc.reason)}")
            return
        # The preview is decoded and re-encoded for the browser; the file itself, byte
        # for byte, is read only when asked for.
        st.download_button(
            "Download the original",
            data=path.read_bytes,
            file_name=path.name,
            mime=original_mime(path),
            key="download-original",
            on_click="ignore",
        )


def _sentence(reason: str) -> str:
    """A reason as the end of a sentence, escaped, with exactly one full stop."""
    return escape_markdown(reason.rstrip(". ")) + "."


def _clear_similar() -> None:
    st.session_state.pop("similar_to", None)


def _set_similar(image_id: str) -> None:
    st.session_state.similar_to = image_id


def show_filters(facets: Sequence[Facet]) -> dict[str, Any] | None:
    """Filter widgets for the facets the index offers; returns the store filter."""
    if not facets:
        return None
    st.subheader("Filters")
    choices: dict[str, list[str]] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for facet in facets:
        # Field names come from the index; labels render Markdown (images included).
        label = escape_markdown(facet.key.replace("_", " ").capitalize()) or "(unnamed field)"
        if isinstance(facet, ChoiceFacet):
            choices[facet.key] = st.multiselect(
                label, facet.options, key=f"filter-{facet.key}", placeholder="any"
            )
        elif isinstance(facet, RangeFacet):
            ranges[facet.key] = range_slider(label, facet)
    return build_filter(facets, choices=choices, ranges=ranges)


def range_slider(label: str, facet: RangeFacet) -> tuple[float, float]:
    """A two-ended slider over the facet's span; integer steps for integer fields."""
    key = f"filter-{facet.key}"
    if facet.integer:
        low, high = int(facet.low), int(facet.high)
        picked = st.slider(label, min_value=low, max_value=high, value=(low, high), key=key)
        return float(picked[0]), float(picked[1])
    span = (float(facet.low), float(facet.high))
    picked_float = st.slider(label, min_value=span[0], max_value=span[1], value=span, key=key)
    return picked_float[0], picked_float[1]


def show_grid(
    engine: SearchEngine, index_key: str, cards: Sequence[ResultCard], *, more_like_this: bool
) -> None:
    """Cards in rows of :data:`GRID_COLUMNS`, each with its photo and details."""
    with st.container(key="results"):
        for start in range(0, len(cards), GRID_COLUMNS):
            row = cards[start : start + GRID_COLUMNS]
            columns = st.columns(GRID_COLUMNS)
            for n, (column, card) in enumerate(zip(columns, row, strict=False), start=start):
                # A fixed height keeps the rows even, whatever a caption's length.
                with column, st.container(height=CARD_HEIGHT, border=True, key=f"card-{n}"):
                    thumbnail = load_thumbnail(index_key, card.id, engine)
                    if thumbnail is None:
                        st.warning(f"{inline_code(card.id)}: no image file")
                    else:
                        st.image(thumbnail, width="stretch")
                    st.markdown(f"**{escape_markdown(card.heading)}**")
                    st.caption(
                        "  \n".join(
                            (
                                inline_code(card.id),
                                *map(escape_markdown, card.details),
                                *([f"“{card.snippet}”"] if card.snippet else []),
                            )
                        )
                    )
                    if more_like_this:
                        st.button(
                            "More like this",
                            key=f"more-{card.id}",
                            on_click=_set_similar,
                            args=(card.id,),
                        )
                    if thumbnail is not None:
                        st.button(
                            "Open",
                            key=f"open-{card.id}",
                            on_click=_open_original,
                            args=(card.id,),
                        )


def show_classify_page(engine: SearchEngine | None, args: AppArgs) -> None:
    """Upload or pick an image, type labels, see their probabilities."""
    st.title("Classify an image")
    sources = ["Upload an image"]
    if engine is not None and len(engine.store) > 0:
        sources.append("Pick an indexed photo")
    source = st.radio("Image", sources, horizontal=True, key="classify-source")
    labels = parse_labels(
        st.text_area("Labels (one per line, or separated by commas)", DEFAULT_LABELS)
    )
    softmax = st.toggle(
        "Softmax view (shares of one, for picking exactly one label)", key="softmax"
    )

    image = None
    if source == "Upload an image":
        upload = st.file_uploader(
            "Upload an image",
            type=["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"],
            key="upload",
            max_upload_size=MAX_UPLOAD_BYTES // 2**20,
        )
        if upload is None:
            st.info("Upload an image to classify it.")
            return
        try:
            image = decode_upload(upload.getvalue(), name=upload.name)
        except ImageLoadError as exc:
            st.error(f"That file cannot be used: {_sentence(exc.reason)}")
            return
    elif engine is not None:
        image_id = st.selectbox("Indexed photo", sample_ids(engine.store, PICKABLE_IDS))
        path = image_path_for_id(engine.store, image_id, folder=engine.folder) if image_id else None
        if path is None:
            st.error(f"The indexed photo {inline_code(image_id)} has no readable image file.")
            return
        try:
            image = load_image(path, max_pixels=MAX_UPLOAD_PIXELS)
        except ImageLoadError as exc:
            st.error(f"That photo cannot be read: {_sentence(exc.reason)}")
            return
    if not labels:
        st.info("Type at least one label.")
        return
    classifier = engine.encoder if engine is not None else load_classifier_or_explain(args)
    if classifier is None or image is None:
        return
    with st.spinner("Classifying…"):
        try:
            scores = classifier.classify(image, labels, softmax=softmax)
        except ZeroshotVisionError as exc:
            st.error(f"Classification failed: {escape_markdown(exc)}")
            return
    left, right = st.columns([1, 2])
    with left:
        st.image(image, width="stretch")
    with right:
        table = {
            "label": [s.label for s in scores],
            "probability": [s.probability for s in scores],
            "cosine": [s.score for s in scores],
        }
        st.bar_chart(table, x="label", y="probability", horizontal=True)
        st.dataframe(table, hide_index=True, key="classify-table")
        st.caption(
            "Softmax shares add up to one across these labels."
            if softmax
            else "Independent probabilities: each label is judged on its own (several, or "
            "none, may fit)."
        )


def load_classifier_or_explain(args: AppArgs) -> Encoder | None:
    """The index-free classifier, or ``None`` after showing why it is unavailable."""
    try:
        return load_classifier(args.model, args.device)
    except ZeroshotVisionError as exc:
        st.error(f"The model could not be loaded: {escape_markdown(exc)}")
        return None


def show_index_page(engine: SearchEngine | None, args: AppArgs) -> None:
    """What is indexed, and a sample of it."""
    st.title("The index")
    if engine is None:
        if args.index is None:
            st.info("No index was given. Start the app with `zsv app --index DIR`.")
        return
    count, model, dim = st.columns(3)
    count.metric("Photos", f"{len(engine.store):,}")
    model.metric("Model", Path(engine.encoder.model_name).name)
    dim.metric("Dimension", engine.store.dim)
    st.markdown(
        f"Store: **{type(engine.store).__name__}** · folder: {inline_code(args.index)} · "
        f"model: {inline_code(engine.encoder.model_name)}"
    )
    ids = sample_ids(engine.store, INDEX_SAMPLE)
    if not ids:
        st.info("The index is empty.")
        return
    st.subheader("A sample")
    records = engine.store.fetch(ids)
    cards = [
        ResultCard(rank=0, id=i, score=0.0, probability=None, heading=i, details=())
        for i in ids
        if i in records
    ]
    show_grid(engine, str(args.index), cards, more_like_this=False)


def show_ask_page(engine: SearchEngine | None, args: AppArgs) -> None:
    """The Ask box: a question, the model's answer as it comes, the photos it cites."""
    import os

    from zeroshot_vision._ask import Answer
    from zeroshot_vision._llm import LLMEndpoint

    st.title("Ask your photos")
    if engine is None:
        st.info("No index was given. Start the app with `zsv app --index DIR` to ask.")
        return
    with st.sidebar:
        st.header("Vision-language model")
        url = st.text_input(
            "Endpoint (OpenAI-compatible)",
            value=os.environ.get("OPENAI_BASE_URL", ""),
            key="llm-url",
            placeholder="http://127.0.0.1:8000/v1",
            help="The API key comes from OPENAI_API_KEY in the app's environment.",
        )
        model = st.text_input(
            "Model",
            value=os.environ.get("ZSV_LLM_MODEL", ""),
            key="llm-model",
            help="Empty: the one model the endpoint serves.",
        )
        k = st.slider("Photos to retrieve", min_value=1, max_value=12, value=4, key="ask-k")
        max_images = st.slider("Photos sent", min_value=0, max_value=8, value=4, key="ask-images")
    question = clean_query(
        st.text_input(
            "Ask a question about your photos",
            key="question",
            placeholder="Which photos show a birthday cake?",
        )
    )
    if question is None:
        st.info("Type a question, for example *which photos were taken at the beach?*")
        return
    if not url.strip():
        st.warning("Name the endpoint in the sidebar (or start the app with OPENAI_BASE_URL).")
        return
    answer: Answer | None = None
    left, right = st.columns([3, 2])
    try:
        with LLMEndpoint(url.strip(), model.strip() or None) as llm, left:
            parts = engine.ask_stream(question, k=k, llm=llm, max_images=max_images)

            def text() -> Any:
                nonlocal answer
                for part in parts:
                    if isinstance(part, str):
                        yield part
                    else:
                        answer = part

            st.write_stream(text(), cursor="▍")
    except ZeroshotVisionError as exc:
        st.error(f"Asking failed: {escape_markdown(exc)}")
        return
    if answer is None:
        return
    view = ask_view(answer)
    with left:
        if answer.status != "answered":
            st.info(escape_markdown(view.text))
        for note in view.notes:
            st.warning(escape_markdown(note))
        if view.footer:
            st.caption(escape_markdown(view.footer))
    with right:
        st.subheader("Cited photos" if view.cited else "Photos shown")
        index_key = f"{args.index}@{index_version(str(args.index))}"
        for card in view.photos:
            with st.container(border=True, key=f"ask-card-{card.id}"):
                thumbnail = load_thumbnail(index_key, card.id, engine)
                if thumbnail is not None:
                    st.image(thumbnail, width="stretch")
                st.markdown(f"**{escape_markdown(card.heading)}**")
                st.caption("  \n".join((inline_code(card.id), *map(escape_markdown, card.details))))


def main(argv: Sequence[str] | None = None) -> None:
    """Render the app for the arguments given after ``--`` to ``streamlit run``."""
    st.set_page_config(page_title="zeroshot-vision", page_icon="🔎", layout="wide")
    try:
        args = parse_app_args(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        st.error(
            f"{escape_markdown(exc)}. Usage: "
            f"{inline_code('zsv app --index DIR [--model M] [--device D]')}"
        )
        return
    page = pick_page()
    engine = open_index(args)
    try:
        if page == "Search":
            show_search_page(engine, args)
        elif page == "Classify":
            show_classify_page(engine, args)
        elif page == "Ask":
            show_ask_page(engine, args)
        else:
            show_index_page(engine, args)
    except ZeroshotVisionError as exc:
        # A store that fails mid-page (a remote one unreachable, say): a message, no traceback.
        st.error(f"Something went wrong: {escape_markdown(exc)}")


if __name__ == "__main__":
    main()
