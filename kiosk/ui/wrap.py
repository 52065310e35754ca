"""Chinese text that never breaks inside a word.

Qt, like the Unicode line-breaking rules, may break Chinese between any two characters:
「手」/「机号后四位」, 「现」/「金」. Here a text is cut into phrases (words from the jieba
segmenter, with the rules below), and a line may break only between phrases, at
punctuation or at a space: inside a phrase every character is joined to the next by a
WORD JOINER (U+2060, zero width), between phrases a ZERO WIDTH SPACE marks the break
opportunity. ``Label`` (kiosk.ui.widgets) shows its text this way and still returns the
plain text.

The rules, on top of the segmenter's words:
* punctuation that closes (，。：、）” …) stays with the phrase before it, punctuation that
  opens (（“「) with the phrase after it; a space stays with the phrase before it;
* a single character joins the phrase before it (请点“好的”: 「“好」「的”」 are one phrase),
  or the one after it when it starts a clause (「或」「输入」 -> 「或输入」), up to
  ``MAX_GLUE`` characters (a phrase longer than a line would have to break anyway)."""
from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache

WJ = "\u2060"          # WORD JOINER: no break on either side
ZWSP = "\u200b"        # ZERO WIDTH SPACE: a break opportunity
CLOSING = set("，。！？、；：）」』”’》〉】…%,.!?;:)]}·—")
OPENING = set("（「『“‘《〈【([{✓⚠")
SPACES = set(" \u3000\t")
MAX_GLUE = 6

_lock = threading.Lock()
_ready = False


def _cut(text: str) -> list[str]:
    global _ready
    import jieba

    if not _ready:
        with _lock:
            if not _ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _ready = True
    return list(jieba.cut(text, HMM=True))


def warm_up() -> None:
    """Load the segmenter's dictionary (about a second) ahead of the first text."""
    _cut("请看屏幕")


def _cjk(s: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in s)


@lru_cache(maxsize=4096)
def phrases(text: str) -> tuple[str, ...]:
    """``text`` (one line, no newline) cut into the phrases a line may break between."""
    out: list[str] = []
    lead = ""                       # opening punctuation, or a clause's first single character
    for tok in (t for t in re.split(r"(\s)", text) if t):
        for w in ([tok] if tok.isspace() else _cut(tok)):
            if w in SPACES and lead and all(ch in OPENING for ch in lead):
                lead += w                # ✓ 现金: the mark stays with its word
                continue
            if w in SPACES or all(ch in CLOSING for ch in w):
                if lead:
                    out.append(lead)
                    lead = ""
                if out:
                    out[-1] += w
                else:
                    out.append(w)
                continue
            if all(ch in OPENING for ch in w):
                lead += w
                continue
            w, lead = lead + w, ""
            core = "".join(ch for ch in w if ch not in OPENING)
            single = len(core) == 1 and _cjk(core)
            prev = out[-1] if out else ""
            ends_clause = not prev or prev[-1] in CLOSING or \
                (prev[-1] in SPACES and not prev.rstrip()[-1:].isdigit())    # 18 元 stays one
            if prev and not _cjk(w) and not _cjk(prev[-1]) and prev[-1] not in SPACES:
                out[-1] += w             # 20: + 36 -> 20:36, ZL + 0002
            elif single and prev and prev.rstrip()[-1:].isdigit() and prev[-1] in SPACES:
                out[-1] += w
            elif single and not ends_clause and _cjk(prev) and len(prev) + len(w) <= MAX_GLUE and core == w:
                out[-1] += w             # 好 + 的 -> 好的; 助老 + 卡 -> 助老卡
            elif single and ends_clause:
                lead = w                 # joins the phrase after it: 或 + 输入 -> 或输入
            else:
                out.append(w)
    if lead:
        out.append(lead)
    return tuple(out)


def breakable(text: str) -> str:
    """``text`` as shown: phrases held together, break opportunities only between them."""
    lines = []
    for line in text.split("\n"):
        parts = []
        for p in phrases(line):
            parts.append(WJ.join(p))
        lines.append(ZWSP.join(parts))
    return "\n".join(lines)


def plain(shown: str) -> str:
    return shown.replace(WJ, "").replace(ZWSP, "")


def unit_bounds(text: str) -> set[int]:
    """Where a line of ``text`` may end (indices into the plain text, newlines included)."""
    out, i = set(), 0
    for line in text.split("\n"):
        for p in phrases(line):
            i += len(p)
            out.add(i)
        i += 1                      # the newline
        out.add(i)
    return out
