"""WordNet for METEOR's synonym stage, offline, from Debian's ``wordnet-base`` package.

nltk reads WordNet from ``NLTK_DATA/corpora/wordnet/``, needs the files copied (not linked) and a
``lexnames`` file that Debian does not ship; we generate it from the package's ``lexnames(5WN)``
man page. ``wordnet()`` returns nltk's reader, or None when no WordNet is to be had (METEOR then
reports "no synonyms" rather than silently scoring without them).
"""

from __future__ import annotations

import gzip
import re
import shutil
from functools import lru_cache
from pathlib import Path

DEBIAN = Path("/usr/share/wordnet")
MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")
CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def lexnames_from_man_page(page: str) -> str:
    """Rows like ``05 noun.animal ...`` -> nltk's ``05\\tnoun.animal\\t1`` lines."""
    rows = re.findall(r"^(\d\d)\t(\w+\.\w+)\s*\t", page, flags=re.M)
    return "".join(f"{num}\t{name}\t{CATEGORY[name.split('.')[0]]}\n" for num, name in rows)


def install(target_root: Path) -> bool:
    """Copy Debian's WordNet under ``target_root/corpora/wordnet`` with a generated lexnames."""
    if not (DEBIAN / "data.noun").is_file() or not MAN_PAGE.is_file():
        return False
    target = target_root / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return True
    tmp = target.with_name(".wordnet-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in DEBIAN.iterdir():
        if f.is_file():
            shutil.copyfile(f, tmp / f.name)
    (tmp / "lexnames").write_text(lexnames_from_man_page(gzip.open(MAN_PAGE, "rt").read()))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return True


@lru_cache(maxsize=1)
def wordnet():
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None  # the multilingual (OMW) mapping needs index.sense, which Debian ships apart

    from studio.settings import studio_home

    root = studio_home() / "nltk_data"
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))  # nltk only reads corpora under its data path
    for base in [root, *map(Path, nltk.data.path)]:
        if (base / "corpora" / "wordnet" / "lexnames").is_file():
            return Reader(str(base / "corpora" / "wordnet"), None)
    if install(root):
        return Reader(str(root / "corpora" / "wordnet"), None)
    return None
