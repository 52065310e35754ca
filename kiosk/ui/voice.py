"""Mandarin voice prompts, offline. espeak-ng's ``cmn-latn-pinyin`` voice reads
pinyin with tone numbers made by pypinyin (its ``cmn`` voice reads tone digits
in English here). Speaking runs in a background thread; with no audio device
(tests, servers) or KIOSK_AUDIO=off the prompt is only logged."""
from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import threading

log = logging.getLogger(__name__)


def numbers_in_words(text: str) -> str:
    """Amounts read as words (应付 12.5 元 -> 应付 十二点五 元): pinyin has no digits."""
    import cn2an

    return cn2an.transform(text, "an2cn")


def to_pinyin(text: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return " ".join(lazy_pinyin(numbers_in_words(text), style=Style.TONE3, neutral_tone_with_five=True,
                                errors="ignore"))


def chime_wav(path: str, seconds: float = 0.9, rate: int = 16000) -> str:
    """A two-tone bell (the staff call), written as a WAV file."""
    import math
    import struct
    import wave

    n = int(seconds * rate)
    frames = bytearray()
    for i in range(n):
        t = i / rate
        f = 880.0 if t < seconds / 2 else 660.0
        env = math.exp(-3.0 * (t % (seconds / 2)))
        frames += struct.pack("<h", int(12000 * env * math.sin(2 * math.pi * f * t)))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


class Voice:
    def __init__(self, enabled: bool = True, rate: int = 130) -> None:
        self.spoken: list[str] = []          # what was said (tests read it)
        self.enabled = enabled               # Settings.audio (KIOSK_AUDIO)
        self.engine = shutil.which("espeak-ng")
        self.rate = rate
        self._q: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._last: tuple[str, float] | None = None
        self.chimes = 0                      # staff calls sounded (tests read it)
        self._chime: str | None = None

    def say(self, text: str) -> None:
        if not text:
            return
        self.spoken.append(text)
        log.info("voice: %s", text)
        if not (self.enabled and self.engine):
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="voice", daemon=True)
            self._thread.start()
        while not self._q.empty():          # say the newest prompt, not a backlog
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._q.put(text)

    def chime(self) -> None:
        """The staff-call sound (played with aplay / paplay when there is an audio device)."""
        self.chimes += 1
        log.info("chime: staff called")
        player = shutil.which("paplay") or shutil.which("aplay")
        if not (self.enabled and player):
            return
        if self._chime is None:
            import tempfile
            self._chime = chime_wav(tempfile.mkstemp(prefix="kiosk-chime-", suffix=".wav")[1])
        threading.Thread(target=lambda: subprocess.run([player, self._chime], stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.DEVNULL, timeout=10, check=False),
                         daemon=True).start()

    def _run(self) -> None:
        while True:
            text = self._q.get()
            if text is None:
                return
            try:
                subprocess.run([self.engine, "-v", "cmn-latn-pinyin", "-s", str(self.rate), to_pinyin(text)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20, check=False)
            except (OSError, subprocess.SubprocessError) as exc:   # no audio device: keep going silently
                log.warning("voice prompt failed: %s", exc)

    def render_wav(self, text: str, path: str) -> bool:
        """Write the prompt to a WAV file (checks and the README's sample)."""
        if not self.engine:
            return False
        r = subprocess.run([self.engine, "-v", "cmn-latn-pinyin", "-s", str(self.rate), "-w", path, to_pinyin(text)],
                           capture_output=True, timeout=30)
        return r.returncode == 0

    def close(self) -> None:
        if self._thread is not None:
            self._q.put(None)
