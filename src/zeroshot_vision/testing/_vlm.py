"""A tiny random vision-language model, and ``transformers serve`` running it, offline.

:func:`build_tiny_vlm` saves a LLaVA (a CLIP vision tower and a Llama text model, about
150k parameters, real transformers classes) with a byte-level BPE tokenizer trained on a
few sentences and a ChatML chat template. :class:`TransformersServe` runs
``transformers serve`` (the ``transformers[serving]`` extra) on it on 127.0.0.1: a real
OpenAI-compatible ``/v1/chat/completions`` endpoint that takes ``data:`` image URLs and
streams. Its answers are random text: use it to test plumbing (what was sent, what was
received, streaming, errors), not wording.

Each image becomes :data:`TINY_VLM_IMAGE_TOKENS` prompt tokens, so the prompt token count
the server reports shows how many images it received.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from zeroshot_vision._optional import require

__all__ = ["TINY_VLM_IMAGE_TOKENS", "TransformersServe", "build_tiny_vlm"]

logger = logging.getLogger(__name__)

TINY_VLM_IMAGE_TOKENS = 16
"""Prompt tokens per image: 56 px images cut in 14 px patches, the CLS token dropped."""

_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
_CORPUS = [
    "What is in these photos?",
    "a photo of a cat",
    "a happy golden retriever puppy",
    "a cyber-punk street at night",
    "The photos show a dog on a beach [1] and a red car [2].",
    "Photo [3] shows a rocket.",
    "user",
    "assistant",
    "system",
    "You are a helpful assistant.",
]

# ChatML; an image part (OpenAI's image_url, or transformers' image) becomes one <image>.
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<image>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_vlm(
    path: str | os.PathLike[str], *, seed: int = 0, max_new_tokens: int = 16
) -> Path:
    """Build the tiny random LLaVA and save it (model and processor) to ``path``.

    Args:
        path: The folder to write; created if missing.
        seed: Seeds the random weights.
        max_new_tokens: The default answer length of its generation config.

    Returns:
        ``path``, ready for ``transformers serve PATH`` or ``from_pretrained``.
    """
    torch = require("torch", purpose="build_tiny_vlm")
    transformers = require("transformers", purpose="build_tiny_vlm")
    tokenizers = require("tokenizers", purpose="build_tiny_vlm")

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=_SPECIAL,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_CORPUS * 50, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _SPECIAL}

    side, patch = 56, 14
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    processor = transformers.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=_CHAT_TEMPLATE,
    )
    torch.manual_seed(seed)
    config = transformers.LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": side,
            "patch_size": patch,
            "projection_dim": 32,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        image_token_id=ids["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    model = transformers.LlavaForConditionalGeneration(config).eval()
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        do_sample=False,
        max_new_tokens=max_new_tokens,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TransformersServe:
    """``transformers serve MODEL`` in a child process on 127.0.0.1, for tests and docs.

    The model is loaded at start (``force_model``), so the served id is ``str(model)``
    and an unknown model is answered with an error. Offline: ``HF_HUB_OFFLINE=1``.

    Example:
        >>> with TransformersServe(build_tiny_vlm(tmp)) as server:  # doctest: +SKIP
        ...     LLMEndpoint(server.base_url, server.model).complete(messages)

    Args:
        model: The model folder.
        port: The port; default a free one.
        log_path: A file for the server's output (its request log included); default
            none (the output is discarded).
        start_timeout: Seconds to wait for ``/health`` (15-45 s on two idle cores, minutes busy).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        start_timeout: float = 300.0,
    ) -> None:
        self.model = str(model)
        self.port = port or _free_port()
        self.log_path = Path(log_path) if log_path is not None else None
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> TransformersServe:
        """Start the server and wait until it answers ``/health``.

        Raises:
            RuntimeError: It exited, or did not answer within ``start_timeout``.
        """
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        command = [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            self.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--enable-log-requests",
        ]
        output = self.log_path.open("wb") if self.log_path is not None else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=env
            )
        finally:
            if self.log_path is not None:
                output.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited with {self._process.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    logger.info("transformers serve is up on port %d", self.port)
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer within {self.start_timeout:g} s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and wait for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __enter__(self) -> TransformersServe:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
