"""A small multilingual caption set in the Crossmodal-3600 (XM3600) folder layout.

XM3600 is 3,600 photos with human captions in 36 languages; its release is a
``captions.jsonl`` (one JSON object per image: ``"image/key"`` and, per language code,
``{"caption": [...], "caption/tokenized": [...]}``) beside the photos named
``<image/key>.jpg``. :func:`build_xm3600_sample` writes the same layout from photos you
give it, with captions in seven languages and five scripts, so that per-language
evaluation (``zsv eval retrieval --data FOLDER``) runs offline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

__all__ = ["SAMPLE_CAPTIONS", "build_xm3600_sample"]

SAMPLE_CAPTIONS: tuple[dict[str, str], ...] = (
    {
        "en": "an astronaut in a white space suit",
        "de": "ein Astronaut im weißen Raumanzug",
        "ja": "白い宇宙服を着た宇宙飛行士",
        "zh": "穿着白色宇航服的宇航员",
        "ar": "رائد فضاء يرتدي بدلة فضاء بيضاء",
        "hi": "सफेद अंतरिक्ष सूट में एक अंतरिक्ष यात्री",
        "ru": "космонавт в белом скафандре",
    },
    {
        "en": "a cup of coffee on a saucer",
        "de": "eine Tasse Kaffee auf einer Untertasse",
        "ja": "受け皿に載ったコーヒーカップ",
        "zh": "碟子上的一杯咖啡",
        "ar": "فنجان قهوة على صحن",
        "hi": "तश्तरी पर कॉफी का एक कप",
        "ru": "чашка кофе на блюдце",
    },
    {
        "en": "a tabby cat looking at the camera",
        "de": "eine getigerte Katze schaut in die Kamera",
        "ja": "カメラを見つめるトラ猫",
        "zh": "看着镜头的虎斑猫",
        "ar": "قطة مخططة تنظر إلى الكاميرا",
        "hi": "कैमरे की ओर देखती एक धारीदार बिल्ली",
        "ru": "полосатая кошка смотрит в камеру",
    },
    {
        "en": "a rocket on the launch pad",
        "de": "eine Rakete auf der Startrampe",
        "ja": "発射台の上のロケット",
        "zh": "发射台上的火箭",
        "ar": "صاروخ على منصة الإطلاق",
        "hi": "लॉन्च पैड पर एक रॉकेट",
        "ru": "ракета на стартовой площадке",
    },
    {
        "en": "countless galaxies in deep space",
        "de": "unzählige Galaxien im tiefen Weltraum",
        "ja": "深宇宙に広がる無数の銀河",
        "zh": "深空中无数的星系",
        "ar": "مجرات لا تحصى في الفضاء العميق",
        "hi": "गहरे अंतरिक्ष में अनगिनत आकाशगंगाएँ",
        "ru": "бесчисленные галактики в глубоком космосе",
    },
    {
        "en": "a red motorcycle seen from the side",
        "de": "ein rotes Motorrad von der Seite",
        "ja": "横から見た赤いオートバイ",
        "zh": "从侧面看的红色摩托车",
        "ar": "دراجة نارية حمراء من الجانب",
        "hi": "बगल से दिखती एक लाल मोटरसाइकिल",
        "ru": "красный мотоцикл сбоку",
    },
)
"""Captions for scikit-image's astronaut, coffee, chelsea, rocket, hubble_deep_field and
motorcycle_left photos, in that order, in seven languages."""


def build_xm3600_sample(
    folder: str | os.PathLike[str],
    photos: Sequence[str | os.PathLike[str]],
    captions: Sequence[dict[str, str]] = SAMPLE_CAPTIONS,
) -> Path:
    """Write ``photos`` and their captions into ``folder`` in the XM3600 layout.

    Args:
        folder: Created if missing; gets ``captions.jsonl`` and ``images/<key>.jpg``.
        photos: One photo per caption set (any format Pillow reads; saved as JPEG).
        captions: Per photo, ``{language code: caption}``.

    Returns:
        ``folder``, ready for ``zsv eval retrieval --data``.
    """
    if len(photos) != len(captions):
        raise ValueError(f"{len(photos)} photos for {len(captions)} caption sets")
    root = Path(folder)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, (photo, texts) in enumerate(zip(photos, captions)):
        key = f"{number:016x}"
        with Image.open(photo) as image:
            image.convert("RGB").save(images / f"{key}.jpg", quality=90)
        row: dict[str, object] = {"image/key": key, "image/locale": "en"}
        for code, text in texts.items():
            row[code] = {"caption": [text], "caption/tokenized": [text.lower()]}
        lines.append(json.dumps(row, ensure_ascii=False))
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
