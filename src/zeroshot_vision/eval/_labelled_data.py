"""Evaluation data: labelled image folders and (image, text) pairs.

* :func:`read_image_folder`: one sub-folder per class, the folder's name is the label
  (``golden_retriever`` becomes ``golden retriever``), as torchvision's ``ImageFolder``.
* :func:`read_pairs_tsv`: a tab-separated file of ``image path <TAB> caption`` lines.
* :func:`read_unsplash_pairs`: Unsplash Lite's own relevance judgments: real search
  queries paired with the photo downloaded after them (``conversions``), keywords that
  users suggested (``keywords``), and machine captions (``ai_description``).
* :func:`read_multilingual_pairs`: captions in many languages, scored per language: the
  Crossmodal-3600 (XM3600) folder layout, or JSON lines of (image, language, caption).

Readers check what they can without decoding images: missing files and empty classes
are skips (returned, with a reason), not errors; a dataset with nothing usable left is an
:class:`~zeroshot_vision._errors.InvalidInputError`.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zeroshot_vision._errors import DatasetNotFoundError, InvalidInputError
from zeroshot_vision._images import IMAGE_SUFFIXES

__all__ = [
    "UNSPLASH_SOURCES",
    "ImageFolderDataset",
    "LabeledImage",
    "Pair",
    "PairsDataset",
    "Skipped",
    "UnsplashSource",
    "label_from_folder",
    "read_image_folder",
    "read_multilingual_pairs",
    "read_pairs",
    "read_pairs_tsv",
    "read_unsplash_pairs",
]

logger = logging.getLogger(__name__)

UnsplashSource = Literal["conversions", "keywords", "ai_description"]
UNSPLASH_SOURCES: tuple[UnsplashSource, ...] = ("conversions", "keywords", "ai_description")
"""Unsplash Lite's judgments, in the order they are read."""


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """Something left out of an evaluation, and why.

    Attributes:
        source: The file, folder or table row at fault.
        reason: Why it was left out, in a few words.
    """

    source: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class LabeledImage:
    """An image file and the index of its class in the dataset's ``labels``."""

    path: Path
    label: int


@dataclass(frozen=True, kw_only=True)
class ImageFolderDataset:
    """A labelled image folder.

    Attributes:
        root: The folder.
        labels: Class names, from the sub-folder names, sorted by folder name.
        images: Every image file with its class.
        skipped: Sub-folders left out (no image files), with the reason.
    """

    root: Path
    labels: tuple[str, ...]
    images: tuple[LabeledImage, ...]
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Pair:
    """An image and a text that describes it (a caption, or a query it answers).

    Attributes:
        image: The image file.
        text: The caption or query.
        source: Where the judgment came from (``"tsv"``, ``"conversions"``, ...).
    """

    image: Path
    text: str
    source: str = "tsv"


@dataclass(frozen=True, kw_only=True)
class PairsDataset:
    """(image, text) pairs for text-to-image retrieval.

    Attributes:
        name: Where the pairs came from (a file or folder).
        pairs: The usable pairs, in reading order.
        skipped: Rows left out (a missing image, an empty caption...), with the reason.
    """

    name: str
    pairs: tuple[Pair, ...]
    skipped: tuple[Skipped, ...] = ()
    grouped_by: str = "source"
    """What a pair's ``source`` names: ``"source"`` (where the judgment came from) or
    ``"language"`` (the caption's language code, for multilingual captions)."""

    @property
    def sources(self) -> tuple[str, ...]:
        """The distinct ``source`` values of the pairs, in first-seen order."""
        return tuple(dict.fromkeys(pair.source for pair in self.pairs))


def label_from_folder(name: str) -> str:
    """The label a class folder stands for: ``_`` becomes a space."""
    return " ".join(name.replace("_", " ").split())


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def read_image_folder(folder: str | os.PathLike[str]) -> ImageFolderDataset:
    """Read a folder with one sub-folder of images per class.

    Image files are found at any depth under a class folder, by suffix; hidden files and
    folders are ignored. A class folder with no image file is skipped with a reason.

    Raises:
        DatasetNotFoundError: ``folder`` does not exist or is not a folder.
        InvalidInputError: Fewer than two classes hold images, or two folder names give
            the same label (``red_car`` and ``red car``).
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root} is not a folder")
    labels: list[str] = []
    origin: dict[str, str] = {}
    images: list[LabeledImage] = []
    skipped: list[Skipped] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if class_dir.name.startswith("."):
            continue
        files = _image_files(class_dir)
        if not files:
            skipped.append(Skipped(source=str(class_dir), reason="no image files; class left out"))
            continue
        label = label_from_folder(class_dir.name)
        if label in origin:
            raise InvalidInputError(
                f"folders {origin[label]!r} and {class_dir.name!r} both give the label "
                f"{label!r}; rename one"
            )
        origin[label] = class_dir.name
        images.extend(LabeledImage(path=path, label=len(labels)) for path in files)
        labels.append(label)
    if len(labels) < 2:
        found = f"only {labels[0]!r}" if labels else "none"
        raise InvalidInputError(
            f"{root} needs at least two class sub-folders holding images "
            f"(FOLDER/<label>/<image>); found {found}"
        )
    return ImageFolderDataset(
        root=root, labels=tuple(labels), images=tuple(images), skipped=tuple(skipped)
    )


def _finish_pairs(
    name: str, pairs: Sequence[Pair], skipped: Sequence[Skipped], *, grouped_by: str = "source"
) -> PairsDataset:
    if not pairs:
        reasons = f" ({len(skipped)} skipped, first: {skipped[0].reason})" if skipped else ""
        raise InvalidInputError(f"{name} holds no usable (image, text) pair{reasons}")
    return PairsDataset(
        name=name, pairs=tuple(pairs), skipped=tuple(skipped), grouped_by=grouped_by
    )


_HEADERS = frozenset({("image", "caption"), ("image", "text"), ("path", "caption")})


def read_pairs_tsv(path: str | os.PathLike[str]) -> PairsDataset:
    """Read ``image path <TAB> caption`` lines (an optional header ``image<TAB>caption``).

    Relative image paths are relative to the file's folder. A line with a missing image
    file, an empty caption or not exactly two fields is skipped with its line number.

    Raises:
        DatasetNotFoundError: The file does not exist.
        InvalidInputError: No line is usable, or the file is not UTF-8 or not TSV.
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetNotFoundError(f"pairs file {file} does not exist")
    pairs: list[Pair] = []
    skipped: list[Skipped] = []
    try:
        _read_pairs_rows(file, pairs, skipped)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"pairs file {file} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    except csv.Error as exc:  # a field beyond csv's size limit, a stray quote
        raise InvalidInputError(f"pairs file {file} is damaged: {exc}") from exc
    return _finish_pairs(str(file), pairs, skipped)


def _read_pairs_rows(file: Path, pairs: list[Pair], skipped: list[Skipped]) -> None:
    with file.open(encoding="utf-8-sig", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            where = f"{file}:{number}"
            if not row or all(not field.strip() for field in row):
                continue
            if number == 1 and tuple(f.strip().lower() for f in row) in _HEADERS:
                continue
            if len(row) != 2:
                skipped.append(
                    Skipped(source=where, reason=f"expected 2 tab-separated fields, got {len(row)}")
                )
                continue
            image, text = Path(row[0].strip()), row[1].strip()
            if not image.is_absolute():
                image = file.parent / image
            if not text:
                skipped.append(Skipped(source=where, reason="empty caption"))
            elif not image.is_file():
                skipped.append(Skipped(source=where, reason=f"image {image} does not exist"))
            else:
                pairs.append(Pair(image=image, text=text))


def read_unsplash_pairs(
    dataset_dir: str | os.PathLike[str],
    images_dir: str | os.PathLike[str] | None = None,
    *,
    sources: Iterable[UnsplashSource] = UNSPLASH_SOURCES,
    limit: int | None = None,
) -> PairsDataset:
    """Unsplash Lite's relevance judgments, for the photos that were downloaded.

    * ``conversions``: a real search query and the photo downloaded after it;
    * ``keywords``: keywords a user suggested for the photo (``suggested_by_user = t``);
    * ``ai_description``: the photo's machine-written caption.

    A judgment whose photo is not in ``images_dir`` (as ``<photo_id>.jpg``, the way
    ``zsv download`` writes it) is left out; the skips say how many per source.

    Args:
        dataset_dir: The unzipped Unsplash Lite folder.
        images_dir: Where the photos were downloaded (default: ``dataset_dir``).
        sources: Which judgments to read.
        limit: Only the first ``limit`` photos of the ``photos`` table.

    Raises:
        DatasetNotFoundError: The folder holds no ``photos`` table (or no
            ``conversions`` table when ``conversions`` is the only source).
        InvalidInputError: No judgment has a downloaded photo, or a source is unknown.
    """
    from zeroshot_vision.unsplash._lite import read_conversions, read_keywords, read_photos

    wanted = tuple(dict.fromkeys(sources))
    unknown = [source for source in wanted if source not in UNSPLASH_SOURCES]
    if unknown or not wanted:
        raise InvalidInputError(
            f"unknown Unsplash source {unknown or wanted}; choose from {list(UNSPLASH_SOURCES)}"
        )
    folder = Path(images_dir) if images_dir is not None else Path(dataset_dir)
    photos = {photo.photo_id: photo for photo in read_photos(dataset_dir, limit=limit)}
    on_disk = {
        photo_id: folder / f"{photo_id}.jpg"
        for photo_id in photos
        if (folder / f"{photo_id}.jpg").is_file()
    }
    judgments: dict[str, list[tuple[str, str]]] = {}
    if "conversions" in wanted:
        try:
            judgments["conversions"] = [
                (photo_id, query)
                for query, photo_id in read_conversions(dataset_dir)
                if photo_id in photos
            ]
        except DatasetNotFoundError:
            if wanted == ("conversions",):
                raise
            logger.info("no conversions table in %s", dataset_dir)
    if "keywords" in wanted:
        # An infinite confidence bar keeps exactly the keywords that users suggested.
        by_photo = read_keywords(
            dataset_dir, photo_ids=photos, min_confidence=float("inf"), max_per_photo=10**9
        )
        judgments["keywords"] = [
            (photo_id, keyword) for photo_id, words in by_photo.items() for keyword in words
        ]
    if "ai_description" in wanted:
        judgments["ai_description"] = [
            (photo_id, photo.ai_description)
            for photo_id, photo in photos.items()
            if photo.ai_description
        ]
    pairs: list[Pair] = []
    skipped: list[Skipped] = []
    for source, rows in judgments.items():
        missing = 0
        for photo_id, text in rows:
            if photo_id in on_disk:
                pairs.append(Pair(image=on_disk[photo_id], text=text, source=source))
            else:
                missing += 1
        if missing:
            # One line per source: a partial download can leave thousands missing.
            skipped.append(
                Skipped(
                    source=f"{dataset_dir} ({source})",
                    reason=(
                        "1 judgment names a photo"
                        if missing == 1
                        else f"{missing} judgments name photos"
                    )
                    + f" not downloaded in {folder}",
                )
            )
    return _finish_pairs(str(dataset_dir), pairs, skipped)


def read_pairs(
    data: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None
) -> PairsDataset:
    """Read pairs from a TSV file, an Unsplash Lite folder, an XM3600-layout folder or a
    JSON-lines file of multilingual captions (see above).

    Raises:
        DatasetNotFoundError: ``data`` is neither a file nor an Unsplash folder.
        InvalidInputError: ``images_dir`` was given with a TSV file, or nothing is usable.
    """
    from zeroshot_vision.unsplash._lite import is_unsplash_dir

    path = Path(data)
    if path.is_file():
        if images_dir is not None:
            raise InvalidInputError(
                "--images is for an Unsplash folder; a TSV file names its own image paths"
            )
        if path.suffix.lower() == ".jsonl":
            return read_multilingual_pairs(path)
        return read_pairs_tsv(path)
    if path.is_dir():
        if (path / XM3600_CAPTIONS).is_file():
            return read_multilingual_pairs(path, images_dir=images_dir)
        if not is_unsplash_dir(path):
            raise DatasetNotFoundError(
                f"{path} is a folder without an Unsplash photos table; pass a pairs TSV file "
                "(image path <TAB> caption) or an unzipped Unsplash Lite folder"
            )
        return read_unsplash_pairs(path, images_dir)
    raise DatasetNotFoundError(f"{path} does not exist")


XM3600_CAPTIONS = "captions.jsonl"
"""The captions file of a Crossmodal-3600 folder (beside ``images/<image/key>.jpg``)."""

_MAX_LINE_BYTES = 1 << 20
_MAX_LINE_DEPTH = 8


def read_multilingual_pairs(
    data: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    languages: Iterable[str] | None = None,
) -> PairsDataset:
    """Read captions in many languages, each pair's ``source`` its language code.

    Two layouts:

    * **Crossmodal-3600 (XM3600)**: a folder with ``captions.jsonl``, one JSON object per
      image: ``"image/key"`` and, per language code, ``{"caption": [...], ...}``; the
      images are ``images/<key>.jpg`` (or ``images_dir``).
    * **JSON lines**: a ``.jsonl`` file of ``{"image": path, "language": code,
      "caption": text or [texts]}``; paths relative to the file's folder.

    Retrieval then reports Recall@K per language and their mean (the figure XM3600
    results quote), each language's captions ranking the same gallery of every image.

    Args:
        data: The XM3600 folder or the JSON-lines file.
        images_dir: XM3600 only: where the images are, if not ``<data>/images``.
        languages: Keep only these language codes (default: all).

    Raises:
        DatasetNotFoundError: ``data`` or its captions file does not exist.
        InvalidInputError: Nothing usable is left (broken lines, missing images and
            empty captions are skips, each with its line number).
    """
    path = Path(data)
    wanted = {code.strip() for code in languages} if languages is not None else None
    pairs: list[Pair] = []
    skipped: list[Skipped] = []
    if path.is_dir():
        captions = path / XM3600_CAPTIONS
        if not captions.is_file():
            raise DatasetNotFoundError(f"{path} has no {XM3600_CAPTIONS} (the XM3600 layout)")
        folder = Path(images_dir) if images_dir is not None else path / "images"
        if not folder.is_dir():
            folder = path
        for where, row in _json_lines(captions, skipped):
            key = row.get("image/key")
            if not isinstance(key, str) or not key.strip():
                skipped.append(Skipped(source=where, reason='no "image/key"'))
                continue
            image = folder / f"{key}.jpg"
            texts = {
                code: value.get("caption")
                for code, value in row.items()
                if isinstance(value, dict) and (wanted is None or code in wanted)
            }
            _add_captions(pairs, skipped, where, image, texts)
    elif path.is_file():
        for where, row in _json_lines(path, skipped):
            image_name, code = row.get("image"), row.get("language")
            if not isinstance(image_name, str) or not isinstance(code, str) or not code.strip():
                skipped.append(Skipped(source=where, reason='needs "image" and "language" strings'))
                continue
            if wanted is not None and code.strip() not in wanted:
                continue
            image = Path(image_name)
            if not image.is_absolute():
                image = path.parent / image
            _add_captions(pairs, skipped, where, image, {code.strip(): row.get("caption")})
    else:
        raise DatasetNotFoundError(f"{path} does not exist")
    return _finish_pairs(str(path), pairs, skipped, grouped_by="language")


def _json_lines(file: Path, skipped: list[Skipped]) -> Iterable[tuple[str, dict[str, object]]]:
    """Each line of a JSON-lines file that is a JSON object, with ``file:line``."""
    from zeroshot_vision._json import loads_bounded

    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{file}:{number}"
            if not raw.strip():
                continue
            try:
                row = loads_bounded(
                    raw, max_depth=_MAX_LINE_DEPTH, max_bytes=_MAX_LINE_BYTES, what=where
                )
            except InvalidInputError as exc:
                skipped.append(Skipped(source=where, reason=str(exc).removeprefix(where + " ")))
                continue
            if not isinstance(row, dict):
                skipped.append(Skipped(source=where, reason="not a JSON object"))
                continue
            yield where, row


def _add_captions(
    pairs: list[Pair],
    skipped: list[Skipped],
    where: str,
    image: Path,
    texts: dict[str, object],
) -> None:
    """One pair per non-empty caption of each language, if the image is there."""
    if not image.is_file():
        skipped.append(Skipped(source=where, reason=f"image {image} does not exist"))
        return
    for code, captions in texts.items():
        listed = [captions] if isinstance(captions, str) else captions
        if not isinstance(listed, list):
            skipped.append(Skipped(source=f"{where} [{code}]", reason="no caption"))
            continue
        kept = [text.strip() for text in listed if isinstance(text, str) and text.strip()]
        if not kept:
            skipped.append(Skipped(source=f"{where} [{code}]", reason="empty caption"))
        pairs.extend(Pair(image=image, text=text, source=code) for text in kept)
