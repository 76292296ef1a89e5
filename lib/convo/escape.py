"""Data as text: one function per format a value from data or input is written into.

File names, tags, event values, ids, environment names, error messages, reject reasons and check
samples come from outside: whatever characters they hold, a reader sees them as text, never as
markup. Each function returns text that the target format renders as exactly the value's
characters (HTML and Markdown show a run of whitespace as one space; `markdown` says so itself).
"""

from __future__ import annotations

import re

# CommonMark lets any ASCII punctuation character be backslash-escaped, and MyST (markdown-it),
# nbconvert's Markdown (mistune) and GitHub agree: escaping them all leaves no character that can
# open markup (HTML tags, entities, links, emphasis, code, math, roles, directives, table cells).
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_MERMAID_PLAIN = frozenset("_.-/ ")


def markdown(value: object) -> str:
    """Inline Markdown (MyST, notebook output, a table cell) that renders as the value's text.

    Whitespace runs, newlines included, become one space: a newline would end a table row or
    start a block, and HTML would show it as a space anyway. A NUL becomes U+FFFD, as CommonMark
    says, which not every parser does.
    """
    return _ASCII_PUNCTUATION.sub(r"\\\1", " ".join(str(value).replace("\0", "\ufffd").split()))


def mermaid(value: object) -> str:
    """A Mermaid label (inside double quotes) that renders as the value's text.

    Every character but ASCII letters, digits and `_.-/ ` (the readable part of paths and table
    names) becomes a Mermaid entity code (`#60;`), which Mermaid decodes into the label's text after
    parsing, so nothing in the value can close the label, start Markdown in it or reach the SVG as markup.
    """
    text = str(value).replace("\0", "\ufffd")  # `#0;` would end Mermaid's parse
    return "".join(c if (c.isascii() and c.isalnum()) or c in _MERMAID_PLAIN else f"#{ord(c)};" for c in text)


def matplotlib(value: object) -> str:
    """A chart label (legend entry, tick label) that matplotlib draws as the value's text.

    A `$` would start mathtext (and invalid mathtext fails the chart); a legend leaves out every
    label that starts with `_`, so such a value gets a space in front.
    """
    text = str(value).replace("$", r"\$")
    return " " + text if text.startswith("_") else text
