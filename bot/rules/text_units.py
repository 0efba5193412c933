"""Text as Telegram sees it: lengths in UTF-16 code units, and characters that
change how a text reads without being seen (bidi controls, invisible characters).

Telegram counts the 4096 characters of a message and the 1024 of a caption in
UTF-16 code units: an emoji outside the Basic Multilingual Plane (😀) counts 2,
a Chinese character 1. Every length check on a text that goes to Telegram uses
:func:`utf16_len`.

Limits: https://core.telegram.org/bots/api#sendmessage (text 1-4096 characters after entities parsing),
https://core.telegram.org/bots/api#sendphoto (caption 0-1024); the counting:
https://core.telegram.org/api/entities#entity-length
"""

from __future__ import annotations

import re

TEXT_LIMIT = 4096  # a message, in UTF-16 units, after entities are parsed
CAPTION_LIMIT = 1024


def utf16_len(text: str) -> int:
    """The length Telegram counts: UTF-16 code units (a character above U+FFFF counts 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def utf16_cut(text: str, limit: int) -> str:
    """The longest start of ``text`` within ``limit`` UTF-16 units (never half a surrogate pair)."""
    if len(text) <= limit // 2 or utf16_len(text) <= limit:
        return text
    used = 0
    for index, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > limit:
            return text[:index]
    return text


# Bidi controls reorder what follows them ("U+202E" makes "gpj.exe" read "exe.jpg"); invisible
# characters make two names that look the same differ, or a name look empty.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
INVISIBLE = (
    "\u200b\u200c\u200d"  # zero-width space, non-joiner, joiner
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner, invisible operators
    "\ufeff\u180e\u00ad\u034f"  # zero-width no-break space (BOM), Mongolian vowel separator, soft hyphen, CGJ
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers (render as nothing)
)
_EMOJI = "\u2600-\u27bf\U0001f000-\U0001faff"
_HIDDEN_SIMPLE = re.compile(f"[{BIDI_CONTROLS}{INVISIBLE}]")


def has_hidden(text: str) -> bool:
    return _HIDDEN_SIMPLE.search(text) is not None


def strip_hidden(text: str) -> str:
    """``text`` without bidi controls and invisible characters (a joiner inside an emoji sequence stays)."""
    if not has_hidden(text):
        return text
    return _HIDDEN_PATTERN.sub("", text)


# Everything hidden but a zero-width joiner; a joiner unless it sits between two emoji, where it
# builds one emoji (👨‍👩‍👧, ❤️‍🔥).
_HIDDEN_PATTERN = re.compile(
    rf"[{BIDI_CONTROLS}{INVISIBLE.replace(chr(0x200D), '')}]"
    rf"|(?<![{_EMOJI}\ufe0f])\u200d|\u200d(?![{_EMOJI}])"
)


def utf16_split(text: str, limit: int) -> list[str]:
    """Cut a long plain text into pieces of at most ``limit`` UTF-16 units, at line ends or spaces when
    possible (a piece is never cut inside a character)."""
    pieces: list[str] = []
    while utf16_len(text) > limit:
        end = max(1, len(utf16_cut(text, limit)))
        cut = text.rfind("\n", 0, end)
        if cut < end // 2:
            cut = text.rfind(" ", 0, end)
        if cut < end // 2:
            cut = end
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n ")
    pieces.append(text)
    return pieces
