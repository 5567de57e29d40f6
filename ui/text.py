"""Data shown as text in widgets that render Markdown.

Streamlit renders Markdown (and its own directives: `:red[...]`, `:material/icon:`, `$math$`) in messages,
captions, metrics and widget labels, including button labels. Labels, file names, payload keys and values,
vector and collection names are user data: escape them with `md_escape` before putting them in such text, or
show them with st.text / st.code / a dataframe, which never render Markdown."""
from __future__ import annotations

import re
from typing import Any

# Characters that Markdown, GFM, HTML or Streamlit's directives (`:red[..]`, `$math$`) act on anywhere in a line.
# CommonMark turns a backslash before any ASCII punctuation into that character, so escaped text shows literally.
_INLINE = re.compile(r"([\\`*_{}\[\]()<>!|~$:&])")
# ...and at the start of a block only: a heading, quote, list item or numbered list item ("1. ", "2) ").
_BLOCK_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)])")
# GitHub-flavoured Markdown links bare URLs and e-mail addresses after escapes are resolved, so escaping cannot stop
# it: an invisible word joiner after these prefixes does (the text looks the same).
_AUTOLINK = re.compile(r"(https?:|www|@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def md_escape(value: Any) -> str:
    """`value` as Markdown source that shows it literally (also in widget labels). Line breaks become spaces: a
    line break in a label would start a new Markdown block (a heading, a list, a code block). Bare URLs and
    e-mail addresses get an invisible word joiner so that they are not turned into links."""
    text = value if isinstance(value, str) else str(value)
    text = _AUTOLINK.sub(r"\1" + WORD_JOINER, re.sub(r"[\r\n]+", " ", text))
    text = _INLINE.sub(r"\\\1", text)
    return _BLOCK_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], text)


def plural(n: int, noun: str, many: str | None = None) -> str:
    """'1 point', '2 points', '1,234 points' (`many` for irregular plurals: plural(n, "match", "matches"))."""
    return f"{n:,} {noun if n == 1 else (many or noun + 's')}"


def clip(text: Any, limit: int = 24) -> str:
    """A label short enough for a chip or a button: cut with an ellipsis (the full text belongs in a tooltip)."""
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
