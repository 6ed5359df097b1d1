"""Text augmentation of training rows (``train.augment``): EDA word operations (Wei & Zou, 2019) and character
noise, seeded, applied by :func:`augment_training_rows` to the training split only.

- ``swap``: two words exchange places, ``round(rate * n)`` times;
- ``delete``: each word dropped with probability ``rate`` (one word always stays);
- ``insert``: ``round(rate * n)`` words of the training texts' own vocabulary inserted at random places (EDA
  inserts WordNet synonyms; WordNet is not available offline here, so the words come from the training set);
- ``keyboard``: a fraction ``rate`` of the letters replaced by a neighbour on a QWERTY keyboard (a typo);
- ``ocr``: a fraction ``rate`` of the characters dropped or confused the way OCR confuses them.

The character operations are the project's own (a few lines, seeded, no dependency); nlpaug's ``KeyboardAug`` /
``OcrAug`` do the same and work offline, but nlpaug is not a dependency of domainfm. :func:`char_noise` is also
what the techniques benchmark uses to corrupt test sets. ``cutoff`` and ``mixup`` act on batches instead
(:mod:`domainfm.engine.loss_terms`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from domainfm.config import TEXT_AUGMENTS, AugmentConfig

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_OCR = {"o": "0", "0": "o", "l": "1", "1": "l", "i": "1", "s": "5", "5": "s", "b": "8", "8": "b", "e": "c",
        "g": "9", "z": "2", "rn": "m", "m": "rn", "cl": "d"}


def _neighbours() -> dict[str, str]:
    out: dict[str, str] = {}
    for r, row in enumerate(_ROWS):
        for c, ch in enumerate(row):
            near = [row[c - 1]] if c > 0 else []
            near += [row[c + 1]] if c + 1 < len(row) else []
            for other in (r - 1, r + 1):
                if 0 <= other < len(_ROWS):
                    near += [_ROWS[other][k] for k in (c - 1, c, c + 1) if 0 <= k < len(_ROWS[other])]
            out[ch] = "".join(near)
    return out


KEYBOARD = _neighbours()


def swap_words(words: list[str], rate: float, rng: random.Random) -> list[str]:
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(max(1, round(rate * len(out)))):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def delete_words(words: list[str], rate: float, rng: random.Random) -> list[str]:
    if len(words) < 2:
        return list(words)
    kept = [w for w in words if rng.random() >= rate]
    return kept or [rng.choice(words)]


def insert_words(words: list[str], rate: float, rng: random.Random, vocabulary: Sequence[str]) -> list[str]:
    out = list(words)
    if not vocabulary:
        return out
    for _ in range(max(1, round(rate * len(words)))):
        out.insert(rng.randrange(len(out) + 1), rng.choice(vocabulary))
    return out


def keyboard_typos(text: str, rate: float, rng: random.Random) -> str:
    chars = list(text)
    letters = [i for i, ch in enumerate(chars) if ch.lower() in KEYBOARD]
    for i in rng.sample(letters, min(len(letters), max(1, round(rate * len(letters))))) if letters else []:
        ch = chars[i]
        typo = rng.choice(KEYBOARD[ch.lower()])
        chars[i] = typo.upper() if ch.isupper() else typo
    return "".join(chars)


def ocr_errors(text: str, rate: float, rng: random.Random) -> str:
    """Drop or OCR-confuse about ``rate`` of the non-space characters."""
    out: list[str] = []
    i = 0
    while i < len(text):
        two, one = text[i : i + 2], text[i]
        if not one.isspace() and rng.random() < rate:
            if two in _OCR:
                out.append(_OCR[two])
                i += 2
                continue
            if one.lower() in _OCR and rng.random() < 0.5:
                out.append(_OCR[one.lower()])
            # else: the character is dropped
            i += 1
            continue
        out.append(one)
        i += 1
    return "".join(out) or text


def char_noise(text: str, rate: float, rng: random.Random) -> str:
    """Typos and dropped characters: each word's letters get keyboard typos or drops at ``rate`` (half each)."""
    chars = list(text)
    out: list[str] = []
    for ch in chars:
        if ch.isalpha() and rng.random() < rate:
            if rng.random() < 0.5:
                continue  # dropped
            typo = rng.choice(KEYBOARD.get(ch.lower(), ch))
            out.append(typo.upper() if ch.isupper() else typo)
        else:
            out.append(ch)
    return "".join(out) or text


def augment_text(text: str, method: str, rate: float, rng: random.Random, vocabulary: Sequence[str]) -> str:
    if method in ("keyboard", "ocr"):
        return keyboard_typos(text, rate, rng) if method == "keyboard" else ocr_errors(text, rate, rng)
    words = text.split()
    if method == "swap":
        words = swap_words(words, rate, rng)
    elif method == "delete":
        words = delete_words(words, rate, rng)
    elif method == "insert":
        words = insert_words(words, rate, rng, vocabulary)
    else:
        raise ValueError(f"train.augment.methods: {method!r} is not a text augmentation")
    return " ".join(words)


def text_methods(config: AugmentConfig) -> list[str]:
    return [m for m in config.methods if m in TEXT_AUGMENTS]


def augment_training_rows(
    texts: list[str], pairs: list[str] | None, labels: list[int], config: AugmentConfig, seed: int
) -> tuple[list[str], list[str] | None, list[int]]:
    """The training rows followed by ``config.copies`` rewritten copies of each per text method (each copy one
    method, in turn), labels copied. For text pairs the first text is rewritten and its pair kept as it is (the
    pair is often a reference answer or a question that must stay intact). The same rows and seed give the same
    copies. Call it on training rows only: validation and test must stay as collected."""
    methods = text_methods(config)
    if not methods or not texts:
        return texts, pairs, labels
    rng = random.Random(seed)
    vocabulary = sorted({w for t in texts for w in t.split() if w.isalpha() and len(w) > 2})
    out_x, out_p, out_y = list(texts), (list(pairs) if pairs is not None else None), list(labels)
    for _copy in range(config.copies):
        for method in methods:
            for i, text in enumerate(texts):
                new = augment_text(text, method, config.rate, rng, vocabulary)
                if new == text:
                    continue  # nothing changed (e.g. a one-word text and swap): no duplicate row
                out_x.append(new)
                out_y.append(labels[i])
                if out_p is not None and pairs is not None:
                    out_p.append(pairs[i])
    return out_x, out_p, out_y
