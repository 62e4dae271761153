"""The ONNX Runtime backend: both towers exported once, run on the CPU in float32 or int8.

How a checkpoint gets here:

1. Its two towers (``get_image_features`` and ``get_text_features``, the raw projected
   features: normalization stays in the encoder) are exported with
   ``torch.onnx.export`` from a float32 copy of the model, with a batch of 2 and a
   dynamic batch axis (an example batch of 1 would silently fix the batch size). Each
   export is checked against torch on a batch of 3 before it is kept, so a graph that
   traced a constant where the model computes one is refused, not used.
2. ``"int8"`` quantizes the MatMuls of both graphs dynamically (weights once, activations
   per call) with ``reduce_range=True``: 7-bit weights, which avoid the overflow of the
   VPMADDUBSW instruction on CPUs without VNNI and keep image vectors at a cosine of about
   0.999 to float32 (the default settings gave 0.946 on a base-shape vision tower).
   Before that, the vision graph goes through ONNX Runtime's transformer optimizer
   (``onnxruntime.transformers.optimizer``, :data:`GRAPH_OPTIMIZER`), which fuses its
   tanh GELUs and LayerNorms; quantizing the fused graph cut the int8 vision tower's CPU
   time by about 12% on the base shape. The text graph is quantized as exported: fused,
   it was no faster (see ``_optimize_for_int8``).
3. The files are cached *beside the model* (``<model folder>/.zsv-onnx/<key>/``, or, for a
   hub checkpoint or a read-only folder, ``$XDG_CACHE_HOME/zeroshot-vision/onnx/<key>``;
   ``$ZSV_ONNX_CACHE`` overrides both). The key hashes the checkpoint's fingerprint (its
   config and sampled weights) with the export format, the graph optimizer's recipe and
   the torch, onnx and onnxruntime versions: a new checkpoint, exporter or optimizer means
   a new export. Each file
   is written to a temporary name and renamed; ``export.json`` lists every file with its
   size and a hash of sampled bytes, so a truncated or damaged file is detected and
   rebuilt; a file lock makes two processes exporting one model at once produce one
   export.

A cached export loads without the torch weights: only the config and the processor are
read, and the checkpoint's ``logit_scale`` and ``logit_bias`` come from ``export.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import ExportError, InvalidInputError, ModelLoadError
from zeroshot_vision._files import _FILE_MODE, write_atomic
from zeroshot_vision._optional import require

if TYPE_CHECKING:
    import torch

__all__ = [
    "CACHE_ENV",
    "EXPORT_FORMAT",
    "GRAPH_OPTIMIZER",
    "OnnxTowers",
    "export_folder",
    "export_key",
    "load_onnx_model",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "ZSV_ONNX_CACHE"
"""Environment variable naming a folder for every ONNX export (instead of beside the model)."""
EXPORT_FORMAT = 3
"""Bumped whenever the exported graphs change; part of the cache key (2: every text graph
takes the attention mask, which SigLIP 2's text needs; 3: the int8 vision graph is
quantized from the optimizer's fused graph)."""
GRAPH_OPTIMIZER = "ort-transformers-fuse-vision-1"
"""The recipe of ``_optimize_for_int8`` (which towers, which fusions); part of the cache
key, so a changed recipe rebuilds the int8 graphs (onnxruntime's version, which ships the
optimizer, is in the key too)."""
OPSET = 17
MANIFEST = "export.json"
_EXPORT_BATCH = 2
_CHECK_BATCH = 3
_SAMPLE_BYTES = 1 << 20
_SKIP_DIR = ".zsv-onnx"
_FILES = {
    ("vision", "float32"): "vision.onnx",
    ("text", "float32"): "text.onnx",
    ("vision", "int8"): "vision-int8.onnx",
    ("text", "int8"): "text-int8.onnx",
}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "onnx", "onnxruntime"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "none"
    return found


def export_key(fingerprint: Any) -> str:
    """The cache key of a checkpoint's export: fingerprint, format and tool versions."""
    material = json.dumps(
        {
            "fingerprint": fingerprint,
            "format": EXPORT_FORMAT,
            "opset": OPSET,
            "optimizer": GRAPH_OPTIMIZER,
            **_versions(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def export_folder(name: str, key: str) -> Path:
    """Where the export of checkpoint ``name`` with cache key ``key`` lives."""
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser() / key[:24]
    local = Path(name).expanduser()
    if local.is_dir() and os.access(local, os.W_OK):
        return local / _SKIP_DIR / key[:24]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "zeroshot-vision" / "onnx" / key[:24]


def _sample_digest(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for start in (0, size // 2, max(size - _SAMPLE_BYTES, 0)):
            handle.seek(start)
            digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


@dataclass(frozen=True)
class _ModelInfo:
    """What a cached export needs besides its graphs to stand in for the model."""

    model_type: str
    logit_scale: float
    logit_bias: float | None
    text_inputs: tuple[str, ...]


class _Manifest:
    """``export.json``: the key, the model's info and each file's size and sampled hash."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.key = key
        self.info: _ModelInfo | None = None
        self.files: dict[str, dict[str, Any]] = {}
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_bytes())
            if data.get("key") != key:
                logger.info("the ONNX export in %s is stale (another key); rebuilding", folder)
                return
            info = data["info"]
            self.info = _ModelInfo(
                model_type=str(info["model_type"]),
                logit_scale=float(info["logit_scale"]),
                logit_bias=None if info["logit_bias"] is None else float(info["logit_bias"]),
                text_inputs=tuple(str(x) for x in info["text_inputs"]),
            )
            self.files = {str(k): dict(v) for k, v in data["files"].items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("the ONNX export's %s is damaged (%s); rebuilding", path, exc)
            self.info = None
            self.files = {}

    def valid(self, filename: str) -> bool:
        """Whether ``filename`` is recorded and its size and sampled hash still match."""
        record = self.files.get(filename)
        path = self.folder / filename
        if record is None or self.info is None:
            return False
        try:
            if path.stat().st_size != record["size"] or _sample_digest(path) != record["sha256"]:
                logger.warning("the cached ONNX file %s is damaged; rebuilding it", path)
                return False
        except (OSError, KeyError):
            return False
        return True

    def add(self, filename: str, **details: Any) -> None:
        path = self.folder / filename
        self.files[filename] = {
            "size": path.stat().st_size,
            "sha256": _sample_digest(path),
            **details,
        }

    def forget(self, filename: str) -> None:
        self.files.pop(filename, None)

    def save(self) -> None:
        assert self.info is not None
        data = {
            "key": self.key,
            "format": EXPORT_FORMAT,
            "optimizer": GRAPH_OPTIMIZER,
            "versions": _versions(),
            "info": {
                "model_type": self.info.model_type,
                "logit_scale": self.info.logit_scale,
                "logit_bias": self.info.logit_bias,
                "text_inputs": list(self.info.text_inputs),
            },
            "files": self.files,
        }
        write_atomic(self.folder / MANIFEST, json.dumps(data, indent=1).encode())


class OnnxTowers:
    """Stands in for a transformers image-text model, its towers run by ONNX Runtime.

    It offers what :class:`~zeroshot_vision.Encoder` calls on a model
    (``get_image_features``, ``get_text_features``, ``config``, ``parameters``,
    ``logit_scale``, ``logit_bias``), taking and returning float32 CPU tensors, so the
    encoder's own code (tokenizing, pixels, normalization, scores) runs unchanged.

    Args:
        vision: Path of the vision graph.
        text: Path of the text graph.
        config: The checkpoint's transformers config.
        info: The checkpoint's logit parameters and text inputs.
        precision: ``"float32"`` or ``"int8"``, for display.
        threads: ONNX Runtime's intra-op threads (``None``: its default, one per core).
    """

    backend = "onnx"

    def __init__(
        self,
        vision: Path,
        text: Path,
        *,
        config: Any,
        info: _ModelInfo,
        precision: str,
        threads: int | None = None,
    ) -> None:
        import torch

        ort = require("onnxruntime", extra="onnx", purpose="the onnx encoder backend")
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        # Idle pool threads sleep instead of spinning for the next op. Spinning saves a
        # wake-up on an idle machine but, on cores other work shares, a spinning thread
        # takes a core from the one computing: a base int8 text pass (2 rows) took 498 ms
        # wall and 349 ms of CPU with spinning, 274 ms and 185 ms without, on two cores
        # at load 4 (one thread: 269 ms, 157 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self.vision_path = vision
        self.text_path = text
        self._vision = ort.InferenceSession(str(vision), options, providers=providers)
        self._text = ort.InferenceSession(str(text), options, providers=providers)
        self._text_inputs = info.text_inputs
        self.config = config
        self.precision = precision
        self.logit_scale = torch.tensor(info.logit_scale)
        self.logit_bias = None if info.logit_bias is None else torch.tensor(info.logit_bias)
        self._anchor = torch.zeros(1, dtype=torch.float32)

    def parameters(self) -> Iterator[torch.Tensor]:
        """One float32 CPU tensor: where and in which precision the encoder feeds inputs."""
        yield self._anchor

    def eval(self) -> OnnxTowers:
        return self

    def get_image_features(self, pixel_values: torch.Tensor, **_: Any) -> torch.Tensor:
        """Projected image features, shape ``(batch, dim)``, not normalized."""
        import torch

        pixels = pixel_values.detach().to("cpu", torch.float32).contiguous().numpy()
        (features,) = self._vision.run(None, {"pixel_values": pixels})
        return torch.from_numpy(features)

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> torch.Tensor:
        """Projected text features, shape ``(batch, dim)``, not normalized."""
        import torch

        feeds = {"input_ids": input_ids.detach().cpu().to(torch.int64).numpy()}
        if "attention_mask" in self._text_inputs:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            feeds["attention_mask"] = attention_mask.detach().cpu().to(torch.int64).numpy()
        (features,) = self._text.run(None, feeds)
        return torch.from_numpy(features)


# -- export -----------------------------------------------------------------------------


def _features(output: Any) -> Any:
    return output if not hasattr(output, "pooler_output") else output.pooler_output


def _towers(model: Any) -> tuple[Any, Any]:
    import torch

    class VisionTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return _features(self.model.get_image_features(pixel_values=pixel_values))  # type: ignore[no-any-return]

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
        ) -> torch.Tensor:
            inputs = {"input_ids": input_ids}
            if attention_mask is not None:
                inputs["attention_mask"] = attention_mask
            return _features(self.model.get_text_features(**inputs))  # type: ignore[no-any-return]

    return VisionTower().eval(), TextTower().eval()


_OPERATOR = re.compile(r"(aten::\w+|aten\.\w+(?:\.\w+)?|prim::\w+|onnx::\w+)")


def _export_error(name: str, tower: str, exc: BaseException) -> ExportError:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    found = _OPERATOR.search(text)
    operator = f"the operator {found.group(1)}" if found else "an operation"
    return ExportError(
        f"cannot export the {tower} tower of {name} to ONNX: {operator} is not supported "
        f"by the exporter ({first[:300]}); use the torch backend "
        "(backend='torch', zsv --backend torch), which runs every checkpoint"
    )


def _check_supported(name: str, config: Any) -> None:
    """Refuse, before any work, what the exported graphs cannot represent."""
    if getattr(config, "model_type", "") == "siglip2":
        raise ExportError(
            f"cannot export the vision tower of {name} to ONNX: SigLIP 2 NaFlex resizes its "
            "position embeddings to each image's patch grid (the operator "
            "aten::upsample_bilinear2d with a size computed from the input), which a traced "
            "graph would fix to one grid; use the torch backend (backend='torch', "
            "zsv --backend torch). SigLIP 2 FixRes checkpoints (siglip2-*-patchNN-RES) "
            "export."
        )
    vision = getattr(config, "vision_config", None)
    if vision is None or getattr(config, "text_config", None) is None:
        raise ExportError(
            f"{name} is not an image-text model with a vision and a text config; the onnx "
            "backend exports SigLIP, SigLIP 2 FixRes and CLIP checkpoints"
        )


def _example_inputs(model: Any, text_length: int, batch: int) -> tuple[Any, dict[str, Any]]:
    import torch

    vision = model.config.vision_config
    side = int(vision.image_size)
    channels = int(getattr(vision, "num_channels", 3))
    generator = torch.Generator().manual_seed(batch)
    pixels = torch.randn(batch, channels, side, side, generator=generator)
    vocab = int(model.config.text_config.vocab_size)
    ids = torch.randint(0, vocab, (batch, text_length), generator=generator)
    text = {"input_ids": ids}
    # Every text graph takes the mask: CLIP's and SigLIP 2's processors give one (SigLIP
    # v1 is read without, and the backend then feeds ones, which changes nothing).
    mask = torch.ones_like(ids)
    mask[0, text_length // 2 :] = 0  # some padding, as real queries have
    text["attention_mask"] = mask
    return pixels, text


def _export(model: Any, name: str, folder: Path, text_length: int) -> _ModelInfo:
    """Export both towers of a float32 ``model`` into ``folder``, each checked against torch."""
    import numpy as np
    import torch

    ort = require("onnxruntime", extra="onnx", purpose="the onnx encoder backend")
    require("onnx", extra="onnx", purpose="exporting a model to ONNX")
    vision_tower, text_tower = _towers(model)
    pixels, text = _example_inputs(model, text_length, _EXPORT_BATCH)
    text_names = list(text)
    jobs = [
        ("vision", vision_tower, (pixels,), ["pixel_values"], "vision.onnx"),
        ("text", text_tower, tuple(text.values()), text_names, "text.onnx"),
    ]
    for tower, module, args, inputs, filename in jobs:
        dynamic = {input_name: {0: "batch"} for input_name in inputs}
        dynamic["features"] = {0: "batch"}
        try:
            with warnings.catch_warnings(), torch.inference_mode():
                # The TorchScript exporter (dynamo=False) needs no onnxscript, exports a
                # base tower in seconds, and torch 2.13 keeps it; torch warns that it is
                # deprecated, and the cache key carries torch's version.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    args,
                    str(folder / filename),
                    input_names=inputs,
                    output_names=["features"],
                    dynamic_axes=dynamic,
                    opset_version=OPSET,
                    dynamo=False,
                )
        except Exception as exc:
            raise _export_error(name, tower, exc) from exc
    # A graph can trace a constant where the model computes one (a batch size, a shape):
    # a batch other than the example's shows it.
    check_pixels, check_text = _example_inputs(model, text_length, _CHECK_BATCH)
    with torch.inference_mode():
        expected = {
            "vision": vision_tower(check_pixels).float().numpy(),
            "text": text_tower(**check_text).float().numpy(),
        }
    feeds = {
        "vision": {"pixel_values": check_pixels.numpy()},
        "text": {key: value.numpy() for key, value in check_text.items()},
    }
    for tower, filename in (("vision", "vision.onnx"), ("text", "text.onnx")):
        session = ort.InferenceSession(str(folder / filename), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, feeds[tower])
        scale = float(np.abs(expected[tower]).max()) or 1.0
        error = float(np.abs(got - expected[tower]).max()) / scale
        if got.shape != expected[tower].shape or error > 1e-3:
            raise ExportError(
                f"the ONNX export of {name}'s {tower} tower disagrees with torch on a batch "
                f"of {_CHECK_BATCH} (relative error {error:.2g}, shape {got.shape}); use the "
                "torch backend (backend='torch', zsv --backend torch)"
            )
    bias = getattr(model, "logit_bias", None)
    scale_param = getattr(model, "logit_scale", None)
    return _ModelInfo(
        model_type=str(getattr(model.config, "model_type", "")),
        logit_scale=float(scale_param.detach().float().item()) if scale_param is not None else 0.0,
        logit_bias=float(bias.detach().float().item()) if bias is not None else None,
        text_inputs=tuple(text_names),
    )


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of a graph's MatMuls, with 7-bit weights (reduce_range)."""
    onnx = require("onnx", extra="onnx", purpose="quantizing an ONNX model")
    quantization = require(
        "onnxruntime.quantization", extra="onnx", purpose="quantizing an ONNX model"
    )
    # onnxruntime.quantization logs advice and per-tensor notes on the root logger;
    # they say nothing a user can act on here.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantization.quantize_dynamic(
                str(source),
                str(target),
                op_types_to_quantize=["MatMul"],
                weight_type=quantization.QuantType.QInt8,
                reduce_range=True,
                # The fused graph's contrib operators (FastGelu) have no ONNX shape
                # inference: their outputs are float32, as every activation here.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        root.setLevel(level)


def _optimize_for_int8(source: Path, target: Path, config: Any) -> dict[str, int] | None:
    """Fuse the vision graph with ONNX Runtime's transformer optimizer, before quantizing.

    ``optimize_model`` (shipped in the onnxruntime wheel) rewrites subgraphs into
    contrib operators: the tanh GELU into ``FastGelu``, each decomposed LayerNorm into one
    node. ONNX Runtime's own session optimizer fuses the same on a float32 graph, so
    float32 gains nothing, but quantizing first splits those patterns around the int8
    MatMuls and the session can no longer fuse them: the fused int8 vision tower of a base
    SigLIP took about 12% less CPU time at the same quality (cosine 0.9999 to the unfused
    int8). The attention of SigLIP's graphs is not fused (shape inference fails on the
    vision graph, the text one has no mask input pattern it knows), and the fused text
    graph quantized was no faster, so the text graph is left as exported. ``opt_level=0``
    runs only these Python fusions, without an ONNX Runtime session.

    Returns:
        The count of each fused operator written to ``target``, or ``None`` when the
        optimizer failed or fused nothing (the caller then quantizes ``source`` itself).
    """
    optimizer = require(
        "onnxruntime.transformers.optimizer", extra="onnx", purpose="optimizing an ONNX model"
    )
    vision = config.vision_config
    model_type = "clip" if getattr(config, "model_type", "") == "clip" else "vit"
    chatter = io.StringIO()  # the optimizer prints shape-inference notes to stdout
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimizer.optimize_model(
                str(source),
                model_type=model_type,
                num_heads=int(vision.num_attention_heads),
                hidden_size=int(vision.hidden_size),
                opt_level=0,
            )
            fused = {
                name: int(count)
                for name, count in optimized.get_fused_operator_statistics().items()
                if count and name != "LayerNormalization"  # exported as one op already
            }
            if fused:
                optimized.save_model_to_file(str(target))
    except Exception as exc:  # noqa: BLE001 - an optimizer bug must not cost the int8 route
        logger.warning(
            "ONNX Runtime's graph optimizer failed on %s (%s); quantizing the graph as exported",
            source,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        return None
    finally:
        root.setLevel(level)
    logger.debug("graph optimizer notes for %s: %s", source, chatter.getvalue().strip())
    return fused or None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder) + ".lock", thread_local=False, is_singleton=False)
    with lock:
        yield


def _temporary(folder: Path, filename: str) -> Path:
    handle, name = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".tmp")
    os.close(handle)
    path = Path(name)
    path.chmod(_FILE_MODE)  # mkstemp's 0600 would hide the cache from others
    return path


def _remove_stale_siblings(folder: Path) -> None:
    """Drop exports of this model under other keys (an older torch, a changed checkpoint)."""
    if folder.parent.name != _SKIP_DIR:
        return
    for sibling in folder.parent.iterdir():
        if sibling.is_dir() and sibling != folder:
            logger.info("removing the stale ONNX export %s", sibling)
            shutil.rmtree(sibling, ignore_errors=True)


def _build(
    folder: Path,
    manifest: _Manifest,
    precision: str,
    *,
    name: str,
    load_torch: Callable[[], Any],
    text_length: int,
    config: Any,
) -> _Manifest:
    """Export (and quantize) what ``precision`` needs; the caller holds the folder's lock."""
    needed_fp32 = [_FILES[("vision", "float32")], _FILES[("text", "float32")]]
    if not all(manifest.valid(f) for f in needed_fp32):
        _remove_stale_siblings(folder)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".export-"))
        try:
            logger.info("exporting %s to ONNX in %s (once per checkpoint)", name, folder)
            model = load_torch()
            info = _export(model, name, staging, text_length)
            del model
            manifest = _Manifest(folder, manifest.key)
            manifest.info = info
            manifest.files = {}
            for file in sorted(staging.iterdir()):
                file.replace(folder / file.name)
                manifest.add(file.name)
            manifest.save()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if precision == "int8":
        for tower in ("vision", "text"):
            filename = _FILES[(tower, "int8")]
            if manifest.valid(filename):
                continue
            logger.info("quantizing the %s tower of %s to int8", tower, name)
            temporary = _temporary(folder, filename)
            fused_graph = _temporary(folder, f"{tower}-fused.onnx")
            try:
                source = folder / _FILES[(tower, "float32")]
                fused = (
                    _optimize_for_int8(source, fused_graph, config) if tower == "vision" else None
                )
                _quantize(fused_graph if fused else source, temporary)
                temporary.replace(folder / filename)
            finally:
                temporary.unlink(missing_ok=True)
                fused_graph.unlink(missing_ok=True)
            manifest.add(filename, fused=fused or {})
            manifest.save()
    return manifest


def _processor(
    transformers: Any,
    name: str,
    options: dict[str, Any],
    loaded: list[Any],
    load_torch: Callable[[], Any],
) -> Any:
    """The checkpoint's processor: the one loaded with the model, else from the cache."""
    if loaded:
        return loaded[1]
    try:
        return transformers.AutoProcessor.from_pretrained(name, **options)
    except Exception:  # noqa: BLE001 - not cached: the full load fetches it
        load_torch()
        return loaded[1]


def load_onnx_model(
    name: str,
    *,
    precision: str,
    revision: str | None = None,
    local_files_only: bool = False,
    threads: int | None = None,
    on_step: Callable[[], None] | None = None,
) -> tuple[OnnxTowers, Any]:
    """The ONNX towers and processor of a checkpoint, exported and cached on first use.

    Args:
        name: A hub id or model folder, as :func:`~zeroshot_vision._models.locate_checkpoint`
            returns it.
        precision: ``"float32"`` or ``"int8"``.
        revision: A hub revision to pin.
        local_files_only: Never touch the network.
        threads: ONNX Runtime's intra-op threads (``None``: one per core).
        on_step: Called after each of two steps (reading, then preparing the graphs).

    Raises:
        MissingDependencyError: onnxruntime (or onnx, to export) is not installed.
        ExportError: The checkpoint cannot be exported; the message names the operator.
        ModelLoadError: The checkpoint cannot be loaded.
    """
    from zeroshot_vision._models import _checkpoint_fingerprint, _first_line, load_model

    require("onnxruntime", extra="onnx", purpose="the onnx encoder backend")
    transformers = require("transformers", purpose="Encoder")
    step = on_step or (lambda: None)
    if precision not in ("float32", "int8"):
        raise InvalidInputError(f"unknown precision {precision!r}; use float32 or int8")
    loaded: list[Any] = []

    def load_torch() -> Any:
        if not loaded:
            import torch

            model, processor = load_model(
                name,
                device=torch.device("cpu"),
                dtype=torch.float32,
                revision=revision,
                local_files_only=local_files_only,
            )
            loaded.extend([model, processor])
        return loaded[0]

    fingerprint = _checkpoint_fingerprint(name)
    if fingerprint is None:  # a hub checkpoint not downloaded yet: loading fetches it
        load_torch()
        fingerprint = _checkpoint_fingerprint(name)
        if fingerprint is None:
            fingerprint = ("unsampled", name, revision)
    key = export_key(fingerprint)
    folder = export_folder(name, key)
    options = {"revision": revision, "local_files_only": True}
    try:
        config = transformers.AutoConfig.from_pretrained(name, **options)
    except Exception:  # noqa: BLE001 - not cached locally: the full load fetches it
        config = load_torch().config
    _check_supported(name, config)
    text_length = 64 if config.model_type in ("siglip", "siglip2") else None
    if text_length is None:
        text_length = int(getattr(config.text_config, "max_position_embeddings", 77))
    else:
        text_length = min(text_length, int(config.text_config.max_position_embeddings))
    step()
    wanted = [_FILES[("vision", precision)], _FILES[("text", precision)]]

    def ready() -> _Manifest:
        manifest = _Manifest(folder, key)
        if all(manifest.valid(f) for f in wanted):
            return manifest
        with _locked(folder):
            manifest = _Manifest(folder, key)  # another process may have built it meanwhile
            return _build(
                folder, manifest, precision, name=name, load_torch=load_torch,
                text_length=text_length, config=config,
            )  # fmt: skip

    manifest = ready()
    processor = _processor(transformers, name, options, loaded, load_torch)
    towers: OnnxTowers | None = None
    for attempt in (1, 2):
        assert manifest.info is not None
        try:
            towers = OnnxTowers(
                folder / wanted[0],
                folder / wanted[1],
                config=config,
                info=manifest.info,
                precision=precision,
                threads=threads,
            )
            break
        except Exception as exc:
            # Damage the sampled hash missed: ONNX Runtime refuses the file. Rebuild once.
            if attempt == 2:
                raise ModelLoadError(
                    f"cannot load the ONNX export of {name} from {folder}: "
                    f"{_first_line(exc)}; delete that folder to rebuild it"
                ) from exc
            logger.warning(
                "cannot load the cached ONNX export in %s (%s); rebuilding it",
                folder,
                _first_line(exc),
            )
            with _locked(folder):
                shutil.rmtree(folder, ignore_errors=True)
            manifest = ready()
    loaded.clear()  # the torch weights are not needed any more
    assert towers is not None
    step()
    return towers, processor
