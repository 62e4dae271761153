"""Start the Streamlit app in a subprocess (what ``zsv app`` does).

The subprocess runs :data:`ENTRY`, which serves :data:`SCRIPT` behind a ``Host`` check
(:mod:`zeroshot_vision._host_check`): listening on loopback alone does not stop a web
page from reaching the app through DNS rebinding.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from zeroshot_vision._app.logic import MAX_UPLOAD_BYTES
from zeroshot_vision._checks import positive_int
from zeroshot_vision._errors import IndexNotFoundError, InvalidInputError, MissingDependencyError
from zeroshot_vision._optional import require

__all__ = ["ENTRY", "SCRIPT", "launch", "streamlit_command"]

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("streamlit_app.py")
"""The Streamlit script: the app's pages."""

ENTRY = Path(__file__).with_name("asgi.py")
"""What ``launch`` runs: :data:`SCRIPT` as an ASGI app behind the ``Host`` check."""


def streamlit_command(
    index_dir: str | os.PathLike[str] | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    model: str | None = None,
    device: str | None = None,
    max_upload_mb: int = MAX_UPLOAD_BYTES // 2**20,
) -> list[str]:
    """The ``python -m streamlit run ...`` command line that serves the app.

    Args:
        index_dir: The index folder, or ``None`` to serve only the classify page.
        host: The address to listen on. The default is loopback only; listening on other
            interfaces (``0.0.0.0``) must be asked for. Requests must name the app by an
            IP address, ``localhost`` or this host, with ``port``, in their ``Host``
            header; others are refused with 403 (DNS rebinding).
        port: The TCP port, 1 to 65535.
        model: A model name or folder; overrides the index's model.
        device: The torch device (``"cpu"``, ``"cuda"``), or ``None`` for the default.
        max_upload_mb: Largest upload Streamlit accepts, in MiB.

    Raises:
        InvalidInputError: For an empty host or a port or upload limit out of range.
    """
    if not host or not host.strip():
        raise InvalidInputError("host must be a non-empty address such as 127.0.0.1")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInputError(f"port must be an integer from 1 to 65535, got {port!r}")
    max_upload_mb = positive_int(max_upload_mb, "max_upload_mb")
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ENTRY),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(max_upload_mb),
        "--server.fileWatcherType",
        "none",
        # Streamlit's default, made explicit: no folder of files is served as-is.
        "--server.enableStaticServing",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--",
    ]
    if index_dir is not None:
        command += ["--index", str(Path(index_dir).resolve())]
    if model is not None:
        command += ["--model", model]
    if device is not None:
        command += ["--device", device]
    return command


def launch(
    index_dir: str | os.PathLike[str] | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    model: str | None = None,
    device: str | None = None,
    max_upload_mb: int = MAX_UPLOAD_BYTES // 2**20,
    wait: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Serve the app with ``streamlit run`` in a subprocess.

    Args:
        index_dir: The index folder (built by ``zsv index``), or ``None`` to serve only the
            classify page.
        host: The address to listen on; loopback unless asked otherwise.
        port: The TCP port.
        model: A model name or folder; overrides the index's model.
        device: The torch device, or ``None`` for the default.
        max_upload_mb: Largest upload accepted, in MiB.
        wait: Block until the server exits (Ctrl-C stops it). With ``False``, return at
            once; the caller owns the process and must terminate it.
        env: Environment for the subprocess (default: this process's).

    Returns:
        The server process; with ``wait=True`` it has exited and ``returncode`` is set.

    Raises:
        IndexNotFoundError: If ``index_dir`` is not a folder.
        MissingDependencyError: If Streamlit is not installed (the ``app`` extra).
        InvalidInputError: For a bad host, port or upload limit.
    """
    require("streamlit", extra="app", purpose="the zeroshot-vision app")
    if importlib.util.find_spec("streamlit.starlette") is None:
        # The Host check runs as middleware of Streamlit's ASGI app (st.App).
        raise MissingDependencyError(
            "the zeroshot-vision app needs a Streamlit with st.App (streamlit.starlette); "
            "upgrade it: pip install -U 'zeroshot-vision[app]' streamlit"
        )
    if index_dir is not None and not Path(index_dir).is_dir():
        raise IndexNotFoundError(
            f"no index folder at {index_dir}; build one with: zsv index SOURCE --index {index_dir}"
        )
    command = streamlit_command(
        index_dir, host=host, port=port, model=model, device=device, max_upload_mb=max_upload_mb
    )
    logger.info("starting the app on http://%s:%d", host, port)
    process = subprocess.Popen(command, env=dict(env) if env is not None else None)
    if wait:
        _wait_then_stop(process)
    return process


class _Terminated(Exception):
    """SIGTERM arrived while waiting for the server."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _wait_then_stop(process: subprocess.Popen[bytes]) -> None:
    """Wait for the server; on Ctrl-C or SIGTERM stop it, so that it is never orphaned."""
    # Signal handlers can only be set from the main thread.
    handle_sigterm = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if handle_sigterm else None
    try:
        process.wait()
    except (KeyboardInterrupt, _Terminated):
        logger.info("stopping the app")
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    finally:
        if handle_sigterm:
            signal.signal(signal.SIGTERM, previous)
