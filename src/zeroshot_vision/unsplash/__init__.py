"""Unsplash Lite: reading the dataset's tables and downloading its photos.

:func:`read_photos` and :func:`read_keywords` read Unsplash Lite's tables;
:func:`download_dataset` and :func:`download_photos` fetch the files and their photos over
HTTP (the ``download`` extra, httpx), loaded only when one of their names is used.
"""

from typing import TYPE_CHECKING, Any

from zeroshot_vision.unsplash._lite import (
    UnsplashPhoto,
    is_unsplash_dir,
    read_conversions,
    read_keywords,
    read_photos,
)

if TYPE_CHECKING:
    from zeroshot_vision.unsplash._download import (
        DownloadFailure,
        DownloadOutcome,
        DownloadReport,
        RetryPolicy,
        download_dataset,
        download_photos,
    )

__all__ = [
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
        from zeroshot_vision.unsplash import _download as download

        return getattr(download, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
