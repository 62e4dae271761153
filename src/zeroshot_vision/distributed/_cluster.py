"""Connecting to Ray: the user's cluster, or a local one that listens on loopback only.

A cluster given by address (``ray start --head`` on a machine, a KubeRay head service,
``"auto"`` for the cluster this machine belongs to) is the user's: it is joined and left,
never stopped, and securing it (who can reach its ports, token authentication) is the
user's business. Without an address, a cluster that is already initialized in this
process is used as it is; otherwise a local one is started for the run with its node
address pinned to ``127.0.0.1``, no dashboard and no usage reporting, and stopped after.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from zeroshot_vision._optional import require

__all__ = ["connected", "ray_module"]

logger = logging.getLogger(__name__)


def ray_module() -> Any:
    """``ray``, or :class:`~zeroshot_vision._errors.MissingDependencyError` naming the extra."""
    ray = require("ray", extra="ray", purpose="distributed indexing")
    require("ray.data", extra="ray", purpose="distributed indexing")
    return ray


@contextlib.contextmanager
def connected(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected for the duration of the block.

    Args:
        address: A cluster's address (``"ray://head:10001"``, ``"head:6379"``,
            ``"auto"``); ``None`` for a local one. Either way, a connection this
            process already has is used as it is.
        num_cpus: CPUs of a local cluster (default: all of this machine's).
    """
    ray = ray_module()
    if ray.is_initialized():  # the caller's connection: theirs to keep or end
        if address is not None:
            logger.info("Ray is already initialized here; %s is not joined again", address)
        yield ray
        return
    if address is not None:
        logger.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, configure_logging=False, log_to_driver=False)
    else:
        # A cluster we start ourselves reports nothing to anyone (an explicit setting in
        # the environment still wins), and listens on loopback only.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        logger.info("starting a local Ray cluster on 127.0.0.1")
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            configure_logging=False,
            log_to_driver=False,
        )
    try:
        yield ray
    finally:
        ray.shutdown()
