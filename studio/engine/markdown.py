"""Text from a user (a visitor, a rater, an owner) in markdown the studio writes: the page's and the cards'."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*\[\]!|~])")  # what links, images, code and emphasis are made of
_WEB = re.compile(r"(?i)\b(https?|ftp|mailto)(:)|\b(www)(\.)")


def safe_md(text: str, literal: bool = False, links: bool = True) -> str:
    """The one way user-supplied text (a prompt, an answer, a column name, a cell, a file name) goes into
    markdown: nothing in it loads anything (no image, no HTML: a stranger's URL fetched by every viewer's
    browser). ``literal`` also shows markdown's link, image, code and emphasis characters as themselves (report
    lines, names, cells; an underscore inside a word is never emphasis, so ``prompt_completion`` reads as is);
    without it a model's answer keeps its lists and code. ``links=False`` (what a rater reads: a model's answer
    may carry a stranger's link) makes no link either: no ``[text](url)``, and no bare address that the page
    would turn into one (an invisible zero-width space after its scheme or ``www``)."""
    text = str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if not links:
        text = _WEB.sub(lambda m: (m.group(1) or m.group(3)) + "\u200b" + (m.group(2) or m.group(4)), text)
        text = text.replace("](", "]\\(")
    return _MD_SPECIAL.sub(r"\\\1", text) if literal else text.replace("![", "!\\[")
