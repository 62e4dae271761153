"""Named model presets: the checkpoints a user chooses between, with the facts they choose by.

``--model``, ``$ZSV_MODEL`` and ``Encoder.from_pretrained`` take a preset name
(``siglip2-so400m``), a Hugging Face hub id or a local folder; a preset name resolves to
its hub id (see :func:`zeroshot_vision._models.resolve_model`), so an index records the
checkpoint, never the nickname.

The quality figures are published ones, quoted with their source; none was measured here
(this project's machines cannot download the weights). ``zsv models`` prints the table.

Pure data: importing this module costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_PRESET",
    "MULTILINGUAL_PRESET",
    "PRESETS",
    "ModelPreset",
    "preset_for",
    "preset_names",
]


@dataclass(frozen=True, kw_only=True)
class ModelPreset:
    """A named checkpoint and the facts a user picks it by.

    Attributes:
        name: The short name (``siglip2-so400m``) accepted wherever a model is named.
        hub_id: The Hugging Face checkpoint it stands for.
        family: ``"siglip"``, ``"siglip2"`` or ``"clip"``.
        languages: ``("en",)`` for English-only text towers; ``("multilingual",)`` for
            towers trained on many languages.
        dim: Embedding size (vector dimensions in the index).
        image_size: The square input side in pixels.
        download_gb: About how much the weights download (safetensors, float32).
        quality: Published retrieval figures, with their source.
        note: One line on when to pick it.
    """

    name: str
    hub_id: str
    family: str
    languages: tuple[str, ...]
    dim: int
    image_size: int
    download_gb: float
    quality: str
    note: str

    @property
    def multilingual(self) -> bool:
        """Whether the text tower reads more than English."""
        return self.languages != ("en",)

    @property
    def language_label(self) -> str:
        """``"English"`` or ``"100+ languages"``, for tables and messages."""
        return "100+ languages" if self.multilingual else "English"


PRESETS: tuple[ModelPreset, ...] = (
    ModelPreset(
        name="siglip-so400m",
        hub_id="google/siglip-so400m-patch14-384",
        family="siglip",
        languages=("en",),
        dim=1152,
        image_size=384,
        download_gb=3.5,
        quality=(
            "XM3600 text-to-image R@1: 53.1% English, 13.6% averaged over 36 languages "
            "(open_clip multilingual table); Immich English recall 72.58"
        ),
        note="the default: strongest English SigLIP v1; reads English only",
    ),
    ModelPreset(
        name="siglip2-so400m",
        hub_id="google/siglip2-so400m-patch14-384",
        family="siglip2",
        languages=("multilingual",),
        dim=1152,
        image_size=384,
        download_gb=4.5,
        quality="SigLIP 2 paper: trained multilingually (WebLI, Gemma tokenizer)",
        note="for collections searched in other languages; same size class as the default",
    ),
    ModelPreset(
        name="siglip2-base",
        hub_id="google/siglip2-base-patch16-224",
        family="siglip2",
        languages=("multilingual",),
        dim=768,
        image_size=224,
        download_gb=1.5,
        quality="Immich: English recall 75.19 at 5.8 ms per pass (so400m v1: 72.58, 72 ms)",
        note="small and fast, multilingual: the pick for CPUs",
    ),
    ModelPreset(
        name="siglip-base-i18n",
        hub_id="google/siglip-base-patch16-256-multilingual",
        family="siglip",
        languages=("multilingual",),
        dim=768,
        image_size=256,
        download_gb=1.5,
        quality="XM3600 text-to-image R@1: 44.1% averaged over 36 languages (open_clip table)",
        note="SigLIP v1's multilingual base model",
    ),
    ModelPreset(
        name="clip-large",
        hub_id="openai/clip-vit-large-patch14",
        family="clip",
        languages=("en",),
        dim=768,
        image_size=224,
        download_gb=1.7,
        quality="Softmax-trained baseline: it ranks, but its scores are not calibrated",
        note="for comparison in zsv eval; English only",
    ),
)
"""Every preset, the default first."""

DEFAULT_PRESET = "siglip-so400m"
"""The preset of :data:`zeroshot_vision._models.DEFAULT_MODEL`."""

MULTILINGUAL_PRESET = "siglip2-so400m"
"""The preset suggested when a query is in a language the loaded model cannot read."""

_BY_NAME = {preset.name: preset for preset in PRESETS}
_BY_HUB_ID = {preset.hub_id: preset for preset in PRESETS}


def preset_names() -> tuple[str, ...]:
    """The preset names, in table order."""
    return tuple(_BY_NAME)


def preset_for(name: str) -> ModelPreset | None:
    """The preset a name or hub id stands for, or None (a folder, another checkpoint)."""
    key = name.strip()
    return _BY_NAME.get(key) or _BY_HUB_ID.get(key)
