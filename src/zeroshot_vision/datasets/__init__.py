"""Datasets: readers and downloaders for public image collections.

Only :mod:`zeroshot_vision.datasets.unsplash` (Unsplash Lite) for now.
"""

from zeroshot_vision.datasets.unsplash import (
    DatasetNotFoundError,
    DownloadFailure,
    DownloadOutcome,
    DownloadReport,
    RetryPolicy,
    UnsplashPhoto,
    download_dataset,
    download_photos,
    is_unsplash_dir,
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
    "read_keywords",
    "read_photos",
]
