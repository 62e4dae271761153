"""Checkpoints: which one to load, on which device, in which precision, and loading it.

Every entry point (``Encoder.from_pretrained``, ``zsv``, the app, ``zsv eval``) names a
model the same way: :func:`resolve_model` turns a name into a checkpoint (``None`` means
:func:`default_model`; ``"tiny"`` a tiny random SigLIP built offline), :func:`pick_device`
and :func:`pick_dtype` choose where and how it runs, and :func:`load_model` reads it from
the local cache first (so a downloaded checkpoint loads offline and fast), says plainly
when the hub cannot be reached, and optionally quantizes the text tower.

torch and transformers are imported when a model is loaded, never at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import InvalidInputError, ModelLoadError
from zeroshot_vision._optional import require
from zeroshot_vision._presets import preset_for, preset_names

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_ENV",
    "TINY_MODEL",
    "cpu_has_native_bf16",
    "default_model",
    "draft_size_for",
    "embedding_dim",
    "hub_download_command",
    "load_model",
    "locate_checkpoint",
    "pick_device",
    "pick_dtype",
    "resolve_model",
    "same_checkpoint",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "google/siglip-so400m-patch14-384"
"""The checkpoint used when none is named and ``$ZSV_MODEL`` is unset."""
MODEL_ENV = "ZSV_MODEL"
"""The environment variable that names the default model."""
TINY_MODEL = "tiny"
"""The model name (also for ``ZSV_MODEL``) that means: a tiny random SigLIP built offline."""


def default_model() -> str:
    """The model used when none is named: ``$ZSV_MODEL``, else :data:`DEFAULT_MODEL`."""
    return os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL


def resolve_model(name_or_path: str | os.PathLike[str] | None = None) -> str:
    """The checkpoint to load for a model name; the one rule every entry point follows.

    ``None`` (or an empty name) means :func:`default_model`: ``$ZSV_MODEL``, else
    ``google/siglip-so400m-patch14-384``. A preset name (``siglip2-so400m``, see
    :mod:`zeroshot_vision._presets`) means its hub id, unless a folder of that name exists
    here. ``"tiny"`` means a tiny random SigLIP built offline once into the user cache
    (``$XDG_CACHE_HOME/zeroshot-vision/tiny-siglip``): the whole pipeline runs without the
    hub, with meaningless rankings.
    """
    name = os.fspath(name_or_path) if name_or_path is not None else ""
    name = name.strip() or default_model()
    if name != TINY_MODEL:
        preset = preset_for(name)
        if preset is not None and preset.name == name and not Path(name).exists():
            return preset.hub_id
        return name
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "zeroshot-vision" / "tiny-siglip"
    if not (folder / "config.json").is_file():
        from zeroshot_vision._tiny import build_tiny_siglip

        folder.parent.mkdir(parents=True, exist_ok=True)
        # Build beside it and rename, so a killed build never leaves a half-written model.
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tiny-siglip-"))
        try:
            with _quiet_loading(require("transformers", purpose="the tiny model")):
                build_tiny_siglip(staging)  # no "Writing model shards" bar: it is instant
            try:
                staging.rename(folder)
            except OSError:  # another process built it first
                if not (folder / "config.json").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("built the tiny random SigLIP in %s", folder)
    return str(folder)


def pick_device(device: str | torch.device | None) -> torch.device:
    """The torch device to run on: ``device`` if given (checked), else cuda, mps or cpu.

    Raises:
        InvalidInputError: An unknown device, or one this machine does not have.
    """
    import torch

    name: str | torch.device = "cpu"
    if device is not None:
        name = device
    elif torch.cuda.is_available():
        name = "cuda"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        name = "mps"
    try:
        chosen = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"unknown device {name!r}; use cpu, cuda, cuda:N or mps ({_first_line(exc)})"
        ) from exc
    # torch.device() accepts "cuda" on a machine without CUDA; the model would fail later,
    # on its first tensor, with torch's own error.
    if chosen.type not in ("cpu", "meta"):
        backend = getattr(torch.backends, "mps", None) if chosen.type == "mps" else None
        backend = backend or getattr(torch, chosen.type, None)
        available = getattr(backend, "is_available", None)
        if available is None or not available():
            raise InvalidInputError(f"device {str(chosen)!r} is not available on this machine")
        count = getattr(backend, "device_count", None)
        if chosen.index is not None and count is not None and chosen.index >= count():
            raise InvalidInputError(
                f"device {str(chosen)!r} is not available: this machine has {count()}"
            )
    return chosen


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None) -> torch.dtype:
    """The precision to run in: ``dtype`` if given, else the fastest safe one for ``device``.

    bfloat16 (or float16) on GPUs, bfloat16 on CPUs that multiply it in hardware (see
    :func:`cpu_has_native_bf16`), float32 on other CPUs.

    Raises:
        InvalidInputError: ``dtype`` names no torch dtype.
    """
    import torch

    chosen: torch.dtype
    if isinstance(dtype, str):
        found = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(found, torch.dtype):
            raise InvalidInputError(f"unknown dtype {dtype!r}")
        chosen = found
    elif dtype is not None:
        chosen = dtype
    elif device.type == "cuda":
        chosen = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif device.type == "mps":
        chosen = torch.float16
    elif cpu_has_native_bf16():
        # Measured on 2 cores with AVX512-BF16 (docs/benchmarks.md): one so400m text
        # query 3.6x and image encoding 2.7x faster than float32, cosine >= 0.9999.
        chosen = torch.bfloat16
    else:
        chosen = torch.float32
    return chosen


_NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_CPUINFO = Path("/proc/cpuinfo")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX-BF16 or AVX512-BF16).

    Elsewhere bfloat16 matmuls are emulated and slower than float32. torch's own probes
    are private, so ``/proc/cpuinfo``'s flags (Linux) answer when they are missing.
    """
    import torch

    probes = [
        getattr(torch.cpu, name, None)
        for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    if all(callable(probe) for probe in probes):
        with contextlib.suppress(Exception):
            return any(bool(probe()) for probe in probes)  # type: ignore[misc]
    try:
        flags = _CPUINFO.read_text(encoding="ascii", errors="replace").split()
    except OSError:
        return False
    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)


_HF_CLI_SINCE = (0, 34)
"""The huggingface_hub release that brought the ``hf`` command (``huggingface-cli`` before)."""


def hub_download_command(model: str, folder: str) -> str:
    """The shell command that downloads ``model`` into ``folder`` with the installed hub client.

    huggingface_hub 0.34 replaced ``huggingface-cli`` by ``hf`` (and 1.0 removed the old
    name), so the hint follows the version installed here.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = tuple(int(part) for part in version("huggingface_hub").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        release = _HF_CLI_SINCE
    client = "hf" if release >= _HF_CLI_SINCE else "huggingface-cli"
    return f"{client} download {model} --local-dir {folder}"


_CONFIG_NOISE = ("_name_or_path", "transformers_version", "torch_dtype", "dtype")
"""config.json keys that differ between copies of one checkpoint (who saved it, when)."""


def _checkpoint_file(name: str, filename: str) -> Path | None:
    """A file of a checkpoint: in its local folder, or in the hub cache; never fetched."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder / filename if (folder / filename).is_file() else None
    if _looks_like_path(name):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        cached = try_to_load_from_cache(name, filename)
    except ValueError:  # not a valid repo id
        return None
    return Path(cached) if isinstance(cached, str) else None


_SAMPLE_BYTES = 1 << 20


def _checkpoint_fingerprint(name: str) -> tuple[Any, ...] | None:
    """What identifies a checkpoint's content, cheaply: its config and weights samples.

    A fine-tuned model shares its base's config, so the weights count too: each weights
    file's size and a hash of its first, middle and last MiB (a copy is byte-identical;
    reading 3 MiB a file keeps this quick for multi-gigabyte checkpoints).
    """
    import hashlib
    import json

    config_file = _checkpoint_file(name, "config.json")
    if config_file is None:
        return None
    try:
        config = json.loads(config_file.read_bytes())
        weights = ["model.safetensors"]
        index_file = _checkpoint_file(name, "model.safetensors.index.json")
        if index_file is not None:
            weights = sorted(set(json.loads(index_file.read_bytes())["weight_map"].values()))
        samples = []
        for filename in weights:
            file = _checkpoint_file(name, filename) or _checkpoint_file(name, "pytorch_model.bin")
            if file is None:
                return None
            size = file.stat().st_size
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                for start in (0, size // 2, max(size - _SAMPLE_BYTES, 0)):
                    handle.seek(start)
                    digest.update(handle.read(_SAMPLE_BYTES))
            samples.append((size, digest.hexdigest()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(config, dict):
        return None
    kept = {key: value for key, value in config.items() if key not in _CONFIG_NOISE}
    return (json.dumps(kept, sort_keys=True), tuple(samples))


def embedding_dim(config: Any) -> int:
    """The dimension of a checkpoint's embeddings, from its ``config``.

    ``projection_dim`` (SigLIP, CLIP), else the vision tower's width (SigLIP 2's vision
    config has no projection).
    """
    return int(getattr(config, "projection_dim", None) or config.vision_config.hidden_size)


def draft_size_for(processor: Any) -> tuple[int, int]:
    """The size JPEGs may decode down to for a checkpoint: twice its input side.

    ``processor`` is the checkpoint's processor or image processor; its ``size`` gives the
    side (``height``, else ``shortest_edge``; 384 when it says neither).
    """
    image_processor = getattr(processor, "image_processor", processor)
    size = getattr(image_processor, "size", None) or {}
    side = int(size.get("height") or size.get("shortest_edge") or 384)
    return (2 * side, 2 * side)


def same_checkpoint(requested: str, recorded: str) -> bool:
    """Whether ``requested`` names the checkpoint an index recorded as ``recorded``.

    The same name (``"tiny"`` and local folders compared as absolute paths) is the same
    checkpoint; so is a local copy of it, such as a folder made with ``hf download`` on
    another machine: the same ``config.json`` and the same weights (sampled; read from
    the local folder or the hub cache, never the network). Anything else is another
    model, whose vectors do not compare with the index's.
    """
    requested = resolve_model(requested)
    path = Path(requested).expanduser()
    if path.exists():
        requested = str(path.resolve())
    if requested == recorded:
        return True
    mine = _checkpoint_fingerprint(requested)
    return mine is not None and mine == _checkpoint_fingerprint(recorded)


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~", "\\"))
        or Path(name).is_absolute()
        or name.count("/") > 1
        or "\\" in name
    )


def locate_checkpoint(name_or_path: str | os.PathLike[str] | None) -> str:
    """:func:`resolve_model`, then a check that a local path holds a model.

    Returns:
        The hub id, or the model folder's path (``~`` expanded).

    Raises:
        ModelLoadError: The path is a file, a folder without ``config.json``, a path-like
            name that does not exist, or a bare name that is no preset (the message lists
            the presets).
    """
    name = resolve_model(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model path {name} is a file; pass the model's folder")
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"folder {name} holds no model (config.json is missing); pass a folder "
                "written by save_pretrained, or a Hugging Face model id"
            )
        return str(path)
    if _looks_like_path(name):
        raise ModelLoadError(f"model folder {name} does not exist")
    if "/" not in name:
        # Every image-text checkpoint on the hub is namespaced (org/name): a bare name is a
        # mistyped preset or a folder that is not here.
        raise ModelLoadError(
            f"unknown model {name!r}: not a preset ({', '.join(preset_names())}), a hub id "
            "(org/name) or an existing folder; `zsv models` lists the presets"
        )
    return name


def load_model(
    name: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    revision: str | None = None,
    local_files_only: bool = False,
    quantize_text: bool = False,
    on_step: Callable[[], None] | None = None,
) -> tuple[Any, Any]:
    """Load a checkpoint's model and processor, placed on ``device`` in ``dtype``.

    Args:
        name: What :func:`locate_checkpoint` returned: a hub id or a model folder.
        device: From :func:`pick_device`.
        dtype: From :func:`pick_dtype`.
        revision: A hub revision (branch, tag or commit) to pin.
        local_files_only: Never touch the network; use the local cache only.
        quantize_text: CPU only: the text tower's linear layers in int8 (dynamic
            quantization), kept in float32 around them whatever ``dtype`` is.
        on_step: Called after each of the two steps: reading the weights, then placing
            them on the device.

    Returns:
        ``(model, processor)``, the model in eval mode.

    Raises:
        ModelLoadError: The checkpoint cannot be found, fetched, loaded or placed. The
            message names it and says how to point at a local folder instead.
        InvalidInputError: ``quantize_text`` off the CPU, or for a model without a text
            tower.
    """
    transformers = require("transformers", purpose="Encoder")
    step = on_step or (lambda: None)
    try:
        model, processor = _load_checkpoint(
            transformers, name, revision=revision, local_files_only=local_files_only
        )
    except Exception as exc:
        hint = ""
        if not Path(name).is_dir():
            folder = name.rstrip("/").rsplit("/", 1)[-1]
            hint = (
                ". If this machine has no network access, download the checkpoint where you "
                f"can (`{hub_download_command(name, folder)}`), copy the folder here and "
                f"pass its path (--model {folder}, ZSV_MODEL={folder}, or "
                f"Encoder.from_pretrained('{folder}'))"
            )
        raise ModelLoadError(f"cannot load model {name!r}: {_first_line(exc)}{hint}") from exc
    step()
    # Quantized from the weights as loaded, before any cast to a lower precision, and
    # kept out of that cast (the int8 layers take float32 in).
    text_parts = _quantized_text_parts(model, device) if quantize_text else {}
    try:
        model = model.to(device=device, dtype=dtype)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot place {name} on {device} as {dtype}: {_first_line(exc)}"
        ) from exc
    for part_name, part in text_parts.items():
        setattr(model, part_name, part)
    logger.info("loaded %s on %s as %s", name, device, dtype)
    step()
    return model.eval(), processor


def _quantized_text_parts(model: Any, device: torch.device) -> dict[str, Any]:
    """Take the text side out of ``model``, its linear layers dynamically quantized to int8.

    Weights are quantized once (per tensor), activations at each call; the text side runs
    in float32 around the int8 matmuls whatever the image tower's dtype. CLIP's
    ``text_projection`` sits outside its ``text_model`` and is quantized with it. The
    caller puts the returned parts back (by name) after casting the rest of the model.
    """
    import torch

    if device.type != "cpu":
        raise InvalidInputError(f"quantize_text runs on the CPU only, not on {device}")
    if getattr(model, "text_model", None) is None:
        raise InvalidInputError(f"{type(model).__name__} has no text_model to quantize")
    parts = {}
    with warnings.catch_warnings():
        # torch.ao.quantization and quantized tensors announce their move to torchao;
        # they still work in torch 2.13 (the int8 route is opt-in for that reason).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", r"torch\.quantize_per_tensor", UserWarning)
        for name in ("text_model", "text_projection"):
            part = getattr(model, name, None)
            if part is not None:
                parts[name] = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                    part.float().to(device), {torch.nn.Linear}, dtype=torch.qint8
                )
                setattr(model, name, None)
    return parts


def _load_checkpoint(
    transformers: Any, name: str, *, revision: str | None, local_files_only: bool
) -> tuple[Any, Any]:
    """Load model and processor, from the local cache first when it has them.

    Trying the cache first means a checkpoint downloaded once loads without any request
    to the hub (and so works offline, and starts faster).
    """

    def load(offline: bool) -> tuple[Any, Any]:
        options = {"revision": revision, "local_files_only": offline}
        model = transformers.AutoModel.from_pretrained(name, **options)
        processor = transformers.AutoProcessor.from_pretrained(name, **options)
        return model, processor

    local = Path(name).is_dir()
    if local or local_files_only:
        with _quiet_loading(transformers):
            return load(offline=local_files_only)
    try:
        with _quiet_loading(transformers):
            return load(offline=True)
    except Exception as exc:  # noqa: BLE001 - any miss means: fetch it
        logger.debug("%s is not in the local cache (%s); fetching it", name, exc)
    unreachable = _hub_unreachable()
    if unreachable:
        # The hub client would retry for ~25 s before failing the same way.
        raise ModelLoadError(f"it is not in the local cache, and {unreachable}")
    return load(offline=False)  # downloads keep their progress bars


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached, when a quick DNS look-up already tells; else None.

    Behind a proxy the proxy resolves names, so nothing is concluded there.
    """
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    host = urllib.parse.urlsplit(endpoint).hostname
    if not host:
        return None
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        return f"the hub cannot be reached: {host} does not resolve ({exc.strerror})"
    except OSError:
        return None
    return None


@contextlib.contextmanager
def _quiet_loading(transformers: Any) -> Iterator[None]:
    """Hide transformers' "Loading weights" bar while nothing is downloaded.

    The library does not print; a download, which can take minutes, keeps its bars.
    """
    utils = getattr(transformers.utils, "logging", None)
    hub = getattr(utils, "hf_hub_utils", None)
    if utils is None or not utils.is_progress_bar_enabled():
        yield
        return
    hub_was_disabled = hub.are_progress_bars_disabled() if hub is not None else True
    utils.disable_progress_bar()
    try:
        yield
    finally:
        utils.enable_progress_bar()
        if hub_was_disabled and hub is not None:
            hub.disable_progress_bars()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
