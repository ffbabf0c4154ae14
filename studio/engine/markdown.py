"""Text from a user (a visitor, a rater, an owner) in markdown the studio writes: the page's and the cards'."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*\[\]!|~])")  # what links, images, code and emphasis are made of


def safe_md(text: str, literal: bool = False) -> str:
    """The one way user-supplied text (a prompt, an answer, a column name, a cell, a file name) goes into
    markdown: nothing in it loads anything (no image, no HTML: a stranger's URL fetched by every viewer's
    browser). ``literal`` also shows markdown's link, image, code and emphasis characters as themselves (report
    lines, names, cells; an underscore inside a word is never emphasis, so ``prompt_completion`` reads as is);
    without it a model's answer keeps its lists and code."""
    text = str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text) if literal else text.replace("![", "!\\[")
