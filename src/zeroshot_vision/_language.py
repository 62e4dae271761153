"""Can the loaded model read this query? Scripts and unknown tokens, told in one line.

SigLIP so400m v1 reads English only: a Japanese query goes through its tokenizer as a row
of unknown tokens and comes back with confident nonsense. Two signs give it away before
any result is shown:

* the tokenizer can read most of the query only as its unknown token (sentencepiece vocabularies
  without byte fallback, such as SigLIP v1's);
* the model is a preset known to read English only, and most of the query's letters are
  of a script other than Latin (byte-level tokenizers such as CLIP's never produce an
  unknown token, so only the script tells).

Neither blocks the search: the caller shows the warning and still answers.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Any

from zeroshot_vision._presets import MULTILINGUAL_PRESET, preset_for

__all__ = ["dominant_script", "reading_warning", "unreadable_share"]

UNKNOWN_SHARE_LIMIT = 0.5
"""A query with at least this share of unreadable characters is one the model cannot read."""

_MAX_WORDS = 64
"""Words looked at: SigLIP reads 64 tokens, so later words never reach the model."""

_SCRIPT_ALIASES = {"HIRAGANA": "Japanese", "KATAKANA": "Japanese", "CJK": "Chinese/Japanese"}


def dominant_script(text: str) -> str | None:
    """The script most of ``text``'s letters are written in (``"Latin"``, ``"Arabic"``...).

    Read from each letter's Unicode name (its first word); digits, punctuation, spaces
    and emoji do not count. None when ``text`` has no letter.
    """
    counts: Counter[str] = Counter()
    for char in text:
        if not char.isalpha():
            continue
        name = unicodedata.name(char, "")
        if not name:
            continue
        first = name.split()[0]
        counts[_SCRIPT_ALIASES.get(first, first.title())] += 1
    if not counts:
        return None
    return counts.most_common(1)[0][0]


def unreadable_share(tokenizer: Any, text: str) -> float:
    """The share of ``text``'s characters that ``tokenizer`` can only read as unknown.

    Each whitespace-separated word is tokenized on its own; a word with an unknown token
    counts with all its characters (sentencepiece folds a whole run of unknown characters
    into one token, so counting tokens would understate a Japanese sentence). Spaces,
    punctuation and symbols do not count. 0.0 for a tokenizer without an unknown token
    (byte-level ones), or a text with nothing to read.
    """
    unknown = getattr(tokenizer, "unk_token_id", None)
    if unknown is None:
        return 0.0
    words = text.split()[:_MAX_WORDS]
    # One pass over the whole text first: a word read alone yields the unknown token only
    # for characters the vocabulary lacks, and those yield it in the whole text too. Most
    # queries have none, and one call costs a tenth of a call per word (the server asks
    # this of every query).
    if unknown not in _ids(tokenizer, " ".join(words)):
        return 0.0
    total = unread = 0
    for word in words:
        weight = sum(1 for char in word if char.isalnum()) or len(word)
        ids = _ids(tokenizer, word)
        total += weight
        if unknown in ids:
            unread += weight
    return unread / total if total else 0.0


def _ids(tokenizer: Any, text: str) -> list[int]:
    """``text``'s token ids, without the special tokens."""
    tokenize = getattr(tokenizer, "tokenize", None)
    to_ids = getattr(tokenizer, "convert_tokens_to_ids", None)
    if tokenize is not None and to_ids is not None:
        # What ``tokenizer(text, add_special_tokens=False)`` computes, without building a
        # BatchEncoding: a fifth of the time for a short word.
        return list(to_ids(tokenize(text)))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if ids and isinstance(ids[0], list):  # some tokenizers batch a single string
        ids = ids[0]
    return list(ids)


def reading_warning(model_name: str, tokenizer: Any, text: str) -> str | None:
    """One line saying why ``model_name`` cannot read ``text``, or None when it can.

    Args:
        model_name: The checkpoint (hub id, preset name or folder).
        tokenizer: The checkpoint's tokenizer.
        text: The query as the model will read it (cleaned: stripped, lower-cased for
            SigLIP).
    """
    preset = preset_for(model_name)
    english_only = preset is not None and not preset.multilingual
    script = dominant_script(text)
    share = unreadable_share(tokenizer, text)
    if share < UNKNOWN_SHARE_LIMIT and not (english_only and script not in (None, "Latin")):
        return None
    if english_only:
        what = f"{model_name} reads English only"
    else:
        what = f"{model_name} does not know most of this query's words"
    written = f" ({script} script)" if script not in (None, "Latin") else ""
    return (
        f"{what}, so this query{written} may match poorly; a multilingual model reads it: "
        f"`zsv reindex --model {MULTILINGUAL_PRESET}` moves this index to one "
        "(`zsv models` lists the presets)"
    )
