"""The liveness challenge before a face checkout: a spoken and shown request to turn
the head, a bar of the turn made so far against the turn needed (no clock counting
down), the check off the UI thread (one at a time), a gentle second request the same
way, then the card path. One direction on screen at a time."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MIN_CHALLENGE_FPS = 4      # what the head-turn check needs to see a turn progressively
CHALLENGE_S = 7.0          # elders turn slowly; a pass ends the challenge at once
NO_FRAMES_S = 3.0          # no frame for this long during a challenge (camera gone): the card path
CARD_PROMPT = "请用助老卡，或输入手机号后四位"


@dataclass
class Challenge:
    resident_id: str
    direction: str
    prompt: str
    start: float                 # frame time of the first frame of this try
    attempt: int
    event: object                # the FrameEvent that identified the elder
    frames: list = field(default_factory=list)
    checking: bool = False
    first_landmarks: object = None
    progress: float = 0.0
    last_frame_at: float = field(default_factory=time.monotonic)   # this process's clock


class ChallengeController:
    def __init__(self, win) -> None:
        self.win = win
        self.svc = win.service
        self.current: Challenge | None = None

    def cancel(self) -> None:
        self.current = None

    def start(self, ev, attempt: int = 1, start_ts: float | None = None,
              again: tuple[str, str] | None = None) -> None:
        """``again``: the first try's (direction, request), asked once more, gently."""
        w = self.win
        mode = self.svc.liveness.mode()
        if mode == "off":
            w.go_bill(ev.resident_id, "face")
            return
        if mode == "passive":
            result = self.svc.liveness.passive(ev.image, ev.landmarks)
            if result.live:
                ev.live = True
                w.go_bill(ev.resident_id, "face")
            else:
                w.go_noface(f"{result.reason}。{CARD_PROMPT}")
            return
        if again:
            direction, prompt = again[0], "请再" + again[1].removeprefix("请")
        else:
            direction, prompt = self.svc.liveness.new_challenge()
        self.current = Challenge(ev.resident_id, direction, prompt, ev.ts if start_ts is None else start_ts,
                                 attempt, ev)
        w.state = "challenge"
        w.idle.show_challenge(0.0)
        if again:
            w.say_all([(w.idle.hint, "没关系，转过去，再转回来"), (w.idle.prompt, prompt)])
        else:
            w.idle.hint.setText("请慢慢转头，再转回来")
            w.say(prompt, w.idle.prompt)

    def on_frame(self, ev) -> None:
        c = self.current
        if c is None:
            return
        w = self.win
        if ev.decision == "identified" and ev.resident_id not in (None, c.resident_id):
            w.go_idle()             # somebody else stepped in: start again
            return
        c.last_frame_at = time.monotonic()
        c.frames.append(self.svc.liveness.live_frame(ev.ts, ev.primary, ev.landmarks, ev.image))
        if ev.landmarks is not None:
            if c.first_landmarks is None:
                c.first_landmarks = ev.landmarks
            c.progress = max(c.progress, self.svc.liveness.turn_progress(c.first_landmarks, ev.landmarks, c.direction))
        w.idle.show_challenge(c.progress)
        if c.checking or (ev.ts - c.start < 1.0 and len(c.frames) < 8):
            return
        # the check follows the face through every frame so far: off the UI thread, one at a time
        c.checking = True
        final = ev.ts - c.start >= CHALLENGE_S
        w.run_task(self.svc.liveness.check_head_turn, lambda r: self._result(c, r, final),
                   lambda exc: self._error(c, exc), list(c.frames), c.direction)

    def _error(self, c: Challenge, exc: Exception) -> None:
        log.error("liveness check failed: %r", exc)
        c.checking = False
        c.last_frame_at = time.monotonic()
        if self.win.state == "challenge" and self.current is c:
            self.win.go_noface(f"没有看清您。{CARD_PROMPT}")

    def _result(self, c: Challenge, result, final: bool) -> None:
        c.checking = False
        c.last_frame_at = time.monotonic()     # waiting on a slow check is not a camera gap
        w = self.win
        if w.state != "challenge" or self.current is not c:
            return                     # the elder left or somebody else stepped in meanwhile
        if result.live or final:
            seen = [f.ts for f in c.frames if f.bbox is not None]
            fps = (len(seen) - 1) / (seen[-1] - seen[0]) if len(seen) > 1 and seen[-1] > seen[0] else 0.0
            log.log(logging.INFO if fps >= MIN_CHALLENGE_FPS or result.live else logging.WARNING,
                    "liveness %s (attempt %d, %s): %s %s; %d frames at %.1f fps%s",
                    "passed" if result.live else "failed", c.attempt, c.direction, result.reason, result.details,
                    len(c.frames), fps, "" if fps >= MIN_CHALLENGE_FPS else
                    f" (below {MIN_CHALLENGE_FPS} fps the head-turn check cannot see a turn progressively:"
                    " this terminal is too slow or overloaded)")
        if result.live:
            c.event.live = True
            self.current = None
            w.idle.end_challenge()
            w.go_bill(c.resident_id, "face")
        elif final:
            w.run_task(self.svc.liveness.record_failure, lambda _=None: None, None,
                       c.resident_id, result.reason, attempt=c.attempt, details=result.details)
            if c.attempt == 1:
                # the second try gets its own full window, from the newest frame on
                last = w._last_event.ts if w._last_event is not None else c.start + CHALLENGE_S
                self.start(c.event, attempt=2, start_ts=last, again=(c.direction, c.prompt))
            else:
                self.current = None
                w.go_noface(f"{result.reason}。{CARD_PROMPT}")

    def tick(self) -> None:
        """No frames came (camera gone): do not wait for ever. Counted from the newest frame or
        the newest check result, never from the start: a slow check on a busy machine is not
        a reason to give up (the cause of the intermittent `second is not None` UI failure:
        the old guard gave up 14 s of wall time after the challenge began)."""
        c = self.current
        if self.win.state != "challenge" or c is None or c.checking:
            return
        if time.monotonic() - c.last_frame_at > NO_FRAMES_S:
            self.current = None
            self.win.go_noface(f"没有看清您。{CARD_PROMPT}")
