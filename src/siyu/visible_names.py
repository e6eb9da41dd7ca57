"""Names as a person sees them: spaces and invisible characters (zero-width space, direction
marks, the Braille blank of WeChat nicknames) aside. Channels and logins are named by people,
and a name that differs only by what cannot be seen is a name no list can tell apart."""

import unicodedata

UNNAMED = "（未命名）"  # a customer whose name shows nothing: none given, or only invisible characters

# Unicode's default-ignorable code points that are not Cf: variation selectors (官网首页 +
# U+FE0F looked like 官网首页), Hangul fillers (U+115F, U+1160, U+3164, U+FFA0, shown as
# nothing), the combining grapheme joiner, Mongolian free variation selectors, the unassigned
# rest of the tag block. And, though Unicode counts it a symbol, the Braille pattern blank
# U+2800: drawn as nothing, the usual invisible filler of WeChat nicknames (官网首页 + U+2800
# was a second 官网首页, U+2800 alone a blank name). Each (first, last) inclusive.
_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def _invisible(c: str) -> bool:
    # Cf: zero-width space and joiners, BOM, direction marks: a name looks the same with them
    if c.isspace() or unicodedata.category(c) == "Cf":
        return True
    n = ord(c)
    return any(first <= n <= last for first, last in _IGNORABLE)


def tidy_name(name: str) -> str:
    """The name as stored: without spaces or invisible characters at either end."""
    start, end = 0, len(name)
    while start < end and _invisible(name[start]):
        start += 1
    while end > start and _invisible(name[end - 1]) and not _emoji_style(name, start, end - 1):
        end -= 1
    return name[start:end]


def _emoji_style(name: str, start: int, at: int) -> bool:
    """U+FE0F (or U+FE0E) after a symbol: it draws the symbol as an emoji (❤️, not ❤), so the
    name as WeChat shows it and as it is searched for keeps it; after a letter it shows nothing."""
    return name[at] in "\ufe0e\ufe0f" and at > start and unicodedata.category(name[at - 1]) in ("So", "Sm")


def name_key(name: str) -> str:
    """What makes two names the same to a manager: NFKC (full-width ＡＢＣ is ABC), case, spaces
    and invisible characters (zero-width space, direction marks) aside."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in unicodedata.normalize("NFKC", folded) if not _invisible(c))
