"""``Encoder``: SigLIP images and texts to unit vectors in one space, via transformers.

The checkpoint-specific details that silently ruin results when missed are handled here:
text is stripped, lower-cased and padded to 64 tokens with no attention mask (how SigLIP
was trained); images are upright RGB; embeddings come from ``pooler_output`` under
transformers 5.x and from the returned tensor under 4.x; probabilities are SigLIP's
sigmoid with the checkpoint's own ``logit_scale`` and ``logit_bias``.

torch and transformers are imported when an encoder is loaded, never at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import urllib.parse
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

from zeroshot_vision._optional import require
from zeroshot_vision._text import is_utf8, short_repr
from zeroshot_vision.errors import InvalidInputError, ModelLoadError
from zeroshot_vision.images import iter_loaded

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from zeroshot_vision.types import ImageSource

__all__ = ["DEFAULT_MODEL", "TEXT_LENGTH", "Encoder", "sigmoid"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "google/siglip-so400m-patch14-384"
TEXT_LENGTH = 64
"""SigLIP checkpoints were trained on text padded to exactly this many tokens."""

_MASKLESS_TEXT = frozenset({"siglip", "siglip2"})
T = TypeVar("T")


def sigmoid(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Numerically stable logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _pick_device(device: str | torch.device | None) -> torch.device:
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


def _pick_dtype(device: torch.device, dtype: str | torch.dtype | None) -> torch.dtype:
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
    else:
        chosen = torch.float32
    return chosen


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~", "\\"))
        or Path(name).is_absolute()
        or name.count("/") > 1
        or "\\" in name
    )


class Encoder:
    """Embeds images and texts with a SigLIP checkpoint.

    Build one with :meth:`from_pretrained`. Embeddings are float32 numpy arrays with unit
    L2 norm, so a dot product is a cosine similarity.

    Args:
        model: A loaded transformers image-text model (``SiglipModel``, ``AutoModel``...).
        processor: Its processor (image processor + tokenizer).
        model_name: The name or path the model came from.
        batch_size: Default batch size for encoding.
    """

    def __init__(
        self, model: Any, processor: Any, *, model_name: str, batch_size: int | None = None
    ) -> None:
        torch = require("torch", purpose="Encoder")
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ModelLoadError(
                f"{model_name} is a {type(model).__name__}, not an image-text model "
                "with get_image_features/get_text_features (SigLIP, SigLIP 2, CLIP)"
            )
        self._torch = torch
        self._model = model.eval()
        self._processor = processor
        self.model_name = model_name
        parameter = next(model.parameters())
        self.device = parameter.device
        self.dtype = parameter.dtype
        config = model.config
        self.model_type: str = getattr(config, "model_type", "")
        self.dim: int = int(
            getattr(config, "projection_dim", None) or config.vision_config.hidden_size
        )
        text_config = getattr(config, "text_config", None)
        self._text_length = min(
            TEXT_LENGTH, int(getattr(text_config, "max_position_embeddings", TEXT_LENGTH))
        )
        self.batch_size = batch_size or (32 if self.device.type != "cpu" else 8)
        size = getattr(getattr(processor, "image_processor", None), "size", None) or {}
        side = int(size.get("height") or size.get("shortest_edge") or 384)
        self.draft_size: tuple[int, int] = (2 * side, 2 * side)
        """JPEGs decode at reduced scale down to twice the model's input size."""
        scale = getattr(model, "logit_scale", None)
        bias = getattr(model, "logit_bias", None)
        self.logit_scale: float = float(scale.detach().float().item()) if scale is not None else 0.0
        self.logit_bias: float = float(bias.detach().float().item()) if bias is not None else 0.0
        if bias is None:
            logger.warning(
                "%s has no logit_bias: probabilities are not calibrated (not a SigLIP model)",
                model_name,
            )

    def __repr__(self) -> str:
        return (
            f"Encoder(model_name={self.model_name!r}, dim={self.dim}, "
            f"device={str(self.device)!r}, dtype={str(self.dtype).removeprefix('torch.')!r})"
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
    ) -> Encoder:
        """Load a SigLIP (or SigLIP 2 FixRes) checkpoint from the hub or a local folder.

        Args:
            name_or_path: A Hugging Face model id, or a folder written by
                ``save_pretrained``. The first use of a hub id downloads it (about 3.5 GB
                for the default checkpoint) into the Hugging Face cache; later loads use
                the cached copy without contacting the hub (pass ``revision`` to pin one).
            device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``...; ``None`` picks
                cuda, then mps, then cpu.
            dtype: ``torch.float32``, ``"bfloat16"``...; ``None`` picks bfloat16 (or
                float16) on GPUs and float32 on CPU.
            batch_size: Default batch size (32 on GPU, 8 on CPU when ``None``).
            revision: A hub revision (branch, tag or commit) to pin.
            local_files_only: Never touch the network; use the local cache only.

        Raises:
            ModelLoadError: The checkpoint cannot be found, fetched or loaded. The message
                names it and says how to point at a local folder instead.
        """
        require("torch", purpose="Encoder")
        transformers = require("transformers", purpose="Encoder")
        name = os.fspath(name_or_path)
        path = Path(name).expanduser()
        if path.exists():
            if not path.is_dir():
                raise ModelLoadError(f"model path {name} is a file; pass the model's folder")
            if not (path / "config.json").is_file():
                raise ModelLoadError(
                    f"folder {name} holds no model (config.json is missing); pass a folder "
                    "written by save_pretrained, or a Hugging Face model id"
                )
            name = str(path)
        elif _looks_like_path(name):
            raise ModelLoadError(f"model folder {name} does not exist")
        target = _pick_device(device)
        chosen_dtype = _pick_dtype(target, dtype)
        try:
            model, processor = _load_checkpoint(
                transformers, name, revision=revision, local_files_only=local_files_only
            )
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load model {name!r}: {_first_line(exc)}. If this machine has no "
                "network access, download the checkpoint where you can (e.g. "
                "`huggingface-cli download google/siglip-so400m-patch14-384 --local-dir "
                "siglip`), copy the folder here and pass its path (Encoder.from_pretrained("
                "'path/to/siglip') or ZSV_MODEL=path/to/siglip)"
            ) from exc
        try:
            model = model.to(device=target, dtype=chosen_dtype)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot place {name} on {target} as {chosen_dtype}: {_first_line(exc)}"
            ) from exc
        logger.info("loaded %s on %s as %s", name, target, chosen_dtype)
        return cls(model, processor, model_name=name, batch_size=batch_size)

    # -- encoding ----------------------------------------------------------------------

    def encode_texts(
        self, texts: str | Iterable[str], *, batch_size: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Embed texts as unit vectors, shape ``(n, dim)``.

        Each text is stripped and lower-cased, then tokenized to exactly 64 tokens
        (padded or truncated), as SigLIP was trained.

        Raises:
            InvalidInputError: A text is not a string, is empty after stripping, or is not
                valid UTF-8 (holds a lone surrogate).
        """
        items = [texts] if isinstance(texts, str) else list(texts)
        cleaned = []
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise InvalidInputError(f"texts[{i}] must be a string, got {type(text).__name__}")
            if not text.strip():
                raise InvalidInputError(f"texts[{i}] is empty; give some words to search for")
            if not is_utf8(text):
                # sys.argv holds lone surrogates for bytes that are not UTF-8; the tokenizer
                # fails on them with a RuntimeError.
                raise InvalidInputError(
                    f"texts[{i}] is not valid UTF-8 text: {short_repr(text)}; check the "
                    "terminal's encoding"
                )
            cleaned.append(text.strip().lower())
        chunks = [
            self._encode_text_batch(batch)
            for batch in _batches(cleaned, batch_size or max(self.batch_size, 32))
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize already-cleaned texts exactly as the model was trained."""
        tokenizer = getattr(self._processor, "tokenizer", self._processor)
        encoded = tokenizer(
            texts,
            padding="max_length",
            max_length=self._text_length,
            truncation=True,
            return_tensors="pt",
        )
        if self.model_type in _MASKLESS_TEXT:
            # SigLIP pools the last token of an unmasked, padded sequence; a mask
            # changes the embedding.
            return {"input_ids": encoded["input_ids"]}
        return dict(encoded)

    def _encode_text_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        torch = self._torch
        inputs = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        with torch.inference_mode():
            features = self._model.get_text_features(**inputs)
        return self._normalized(features)

    def encode_images(
        self, images: Iterable[ImageSource], *, batch_size: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Embed images as unit vectors, shape ``(n, dim)``.

        Args:
            images: Paths, bytes or PIL images; any iterable, read lazily and decoded on
                worker threads while the model runs, so memory stays bounded.
            batch_size: Images per forward pass (default: the encoder's).

        Raises:
            ImageLoadError: An image cannot be read; nothing is returned. (To skip bad
                images instead, use ``SearchEngine.index_images``.)
        """
        size = batch_size or self.batch_size
        chunks = []
        batch: list[Image.Image] = []
        for _, loaded in iter_loaded(images, draft_size=self.draft_size):
            if isinstance(loaded, Exception):
                raise loaded
            batch.append(loaded)
            if len(batch) >= size:
                chunks.append(self.encode_loaded(batch))
                batch = []
        if batch:
            chunks.append(self.encode_loaded(batch))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def encode_loaded(self, images: list[Image.Image]) -> npt.NDArray[np.float32]:
        """Embed one batch of already-decoded RGB images (see ``images.load_image``)."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        torch = self._torch
        # Call the image processor itself: a SigLIP 2 processor's own defaults (256 patches
        # of 16 px) would override the checkpoint's image settings.
        image_processor = getattr(self._processor, "image_processor", self._processor)
        inputs = image_processor(images=images, return_tensors="pt")
        tensors = {}
        for key, value in inputs.items():
            if not isinstance(value, torch.Tensor):
                continue
            if value.is_floating_point():
                tensors[key] = value.to(self.device, dtype=self.dtype)
            else:
                tensors[key] = value.to(self.device)
        with torch.inference_mode():
            features = self._model.get_image_features(**tensors)
        return self._normalized(features)

    def _normalized(self, output: Any) -> npt.NDArray[np.float32]:
        torch = self._torch
        # transformers 4.x returns a tensor; 5.x a BaseModelOutputWithPooling.
        features = output if isinstance(output, torch.Tensor) else output.pooler_output
        features = features.float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return np.ascontiguousarray(features.cpu().numpy(), dtype=np.float32)

    # -- scores ------------------------------------------------------------------------

    @overload
    def probability(self, cosine: float) -> float: ...

    @overload
    def probability(self, cosine: npt.NDArray[Any]) -> npt.NDArray[np.float64]: ...

    def probability(self, cosine: float | npt.NDArray[Any]) -> float | npt.NDArray[np.float64]:
        """SigLIP's calibrated probability that a text matches an image.

        ``sigmoid(exp(logit_scale) * cosine + logit_bias)``, with the checkpoint's own
        parameters. Each label's probability is independent of the others.
        """
        result = sigmoid(self.logits(cosine))
        return float(result) if np.ndim(cosine) == 0 else result

    def logits(self, cosine: float | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """``exp(logit_scale) * cosine + logit_bias``: the model's match logits."""
        scale = float(np.exp(self.logit_scale))
        logits: npt.NDArray[np.float64] = scale * np.asarray(cosine, dtype=np.float64)
        return logits + self.logit_bias


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
