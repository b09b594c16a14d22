"""Motion detection by frame difference: pure, integer-only, cheap enough for MicroPython.

``MotionDetector.step(frame, now_ms)`` compares a greyscale frame (a
``width * height`` bytes-like) with a slowly updated background:

1. Global light: the mean difference between frame and background (one
   ``sum()`` each, done in C on both interpreters) is taken off every pixel,
   so a cloud passing or a lamp dimming is not motion.
2. A sampled pixel (every ``stride``-th) has *changed* when it differs from
   the background by more than ``delta`` grey levels after that correction.
3. The frame *moves* when at least ``min_permille`` of the sampled pixels
   changed; ``confirm_frames`` moving frames in a row make a motion
   *event*, unless the last event began less than ``cooldown_ms`` ago.
4. The background follows the scene: every ``adapt_every`` frames each
   pixel moves 1/2**``adapt_shift`` of the way to the frame, so a
   door left open stops being motion after a while.

No floats and no allocation per frame: the per-pixel loop does only integer
compares and adds, which is what keeps MicroPython's frame rate up.
"""


class MotionDetector:
    def __init__(  # type: ignore[no-untyped-def]
        self,
        width: int,
        height: int,
        delta: int = 24,
        min_permille: int = 15,
        cooldown_ms: int = 5000,
        confirm_frames: int = 2,
        stride: int = 1,
        adapt_every: int = 2,
        adapt_shift: int = 3,
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError("frame size must be positive")
        if not 1 <= delta <= 255:
            raise ValueError("delta must be 1..255")
        if not 1 <= min_permille <= 1000:
            raise ValueError("min_permille must be 1..1000")
        if stride < 1 or confirm_frames < 1 or adapt_every < 1 or not 0 <= adapt_shift <= 7:
            raise ValueError("stride, confirm_frames, adapt_every >= 1; adapt_shift 0..7")
        self.width = width
        self.height = height
        self.size = width * height
        self.delta = delta
        self.min_permille = min_permille
        self.cooldown_ms = cooldown_ms
        self.confirm_frames = confirm_frames
        self.stride = stride
        self.adapt_every = adapt_every
        self.adapt_shift = adapt_shift
        self.sampled = (self.size + stride - 1) // stride
        self.background = bytearray(self.size)
        self.primed = False
        self.frames = 0
        self.events = 0
        self.suppressed = 0  # moving streaks that came inside a cool-down
        self.last_permille = 0
        self.moving = False
        self._streak = 0
        self._last_event_ms: int | None = None

    def reset(self) -> None:
        """Forget the background (after a camera fault, say): the next frame is the new one."""
        self.primed = False
        self._streak = 0
        self.moving = False

    def step(self, frame, now_ms: int) -> bool:  # type: ignore[no-untyped-def]
        """Feed one frame; True when it starts a motion event."""
        if len(frame) != self.size:
            raise ValueError("frame has %d bytes, expected %d" % (len(frame), self.size))
        self.frames += 1
        bg = self.background
        if not self.primed:
            bg[:] = frame
            self.primed = True
            return False
        changed = self._changed(frame, bg)
        permille = changed * 1000 // self.sampled
        self.last_permille = permille
        if self.frames % self.adapt_every == 0:
            self._adapt(frame, bg)
        self.moving = permille >= self.min_permille
        if not self.moving:
            self._streak = 0
            return False
        self._streak += 1
        if self._streak != self.confirm_frames:
            return False  # not yet confirmed, or already reported this streak
        last = self._last_event_ms
        if last is not None and now_ms - last < self.cooldown_ms:
            self.suppressed += 1
            return False
        self._last_event_ms = now_ms
        self.events += 1
        return True

    def _changed(self, frame, bg: bytearray) -> int:  # type: ignore[no-untyped-def]
        # Light correction: the mean shift of the whole frame (integer, floor).
        shift = (sum(frame) - sum(bg)) // self.size
        hi = self.delta + shift
        lo = shift - self.delta
        count = 0
        for i in range(0, self.size, self.stride):
            d = frame[i] - bg[i]
            if d > hi or d < lo:
                count += 1
        return count

    def _adapt(self, frame, bg: bytearray) -> None:  # type: ignore[no-untyped-def]
        # Every pixel, not only the sampled ones: the light correction sums the whole background.
        k = self.adapt_shift
        round_up = (1 << k) - 1
        for i in range(self.size):
            d = frame[i] - bg[i]
            if d > 0:
                bg[i] += (d + round_up) >> k
            elif d < 0:
                bg[i] -= (round_up - d) >> k
