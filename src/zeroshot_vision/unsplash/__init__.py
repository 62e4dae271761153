"""Unsplash Lite: reading the dataset's tables and downloading its photos.

:mod:`zeroshot_vision.unsplash.lite` reads Unsplash Lite's tables;
:mod:`zeroshot_vision.unsplash.download` fetches their photos over HTTP (the ``download``
extra, httpx), loaded only when one of its names is used.
"""

from typing import Any

from zeroshot_vision.unsplash.lite import (
    DatasetNotFoundError,
    UnsplashPhoto,
    is_unsplash_dir,
    read_conversions,
    read_keywords,
    read_photos,
)

__all__ = [
    "DatasetNotFoundError",
    "DownloadFailure",
    "DownloadOutcome",
    "DownloadReport",
    "RetryPolicy",
    "UnsplashPhoto",
    "download_dataset",
    "download_photos",
    "is_unsplash_dir",
    "read_conversions",
    "read_keywords",
    "read_photos",
]


def __getattr__(name: str) -> Any:
    # The downloader's names load its module (and httpx) only when first used.
    if name in __all__:
        from zeroshot_vision.unsplash import download

        return getattr(download, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
