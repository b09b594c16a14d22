"""Synthetic greyscale scenes for the simulated camera, each with its ground truth.

A scene is a textured background lit by a slowly changing light, sensor noise,
and moving things: people (blobs) crossing the frame, a door opening and
closing. ``Scene.render_into(buf, t_ms)`` draws the frame at ``t_ms`` (scene
time, looping every ``period_ms``) into a ``width * height`` bytearray;
``Scene.truth`` lists the ``(start_ms, end_ms)`` intervals with motion, which
is what a detector should report. Everything is integer arithmetic and the
noise comes from the seeded ``device.rand.Rand``, so both interpreters draw
the same frames.

Built-in scenes (``SCENES``):

* ``walk``   two people cross the hall at different speeds
* ``door``   a door opens, stays open, and closes again later
* ``quiet``  nothing moves: only noise and a slow light drift (no truth at all)
* ``dusk``   dim light that fades, more noise, one person crossing slowly
"""

from device.rand import Rand

# A scene spec: period, light (gain/256 at start, end), noise amplitude, things.
# Things: ("walk", start_ms, end_ms, height_pct, brightness, direction)
#         ("door", open_at_ms, close_at_ms, brightness)
SCENES: dict = {
    "walk": {
        "period_ms": 60000,
        "light": (256, 240),
        "noise": 6,
        "things": (("walk", 8000, 14000, 60, 215, 1), ("walk", 33000, 37000, 70, 30, -1)),
    },
    "door": {
        "period_ms": 60000,
        "light": (250, 262),
        "noise": 6,
        "things": (("door", 10000, 42000, 20),),
    },
    "quiet": {
        "period_ms": 60000,
        "light": (230, 275),
        "noise": 7,
        "things": (),
    },
    "dusk": {
        "period_ms": 60000,
        "light": (200, 150),
        "noise": 9,
        "things": (("walk", 20000, 30000, 65, 235, 1),),
    },
}

DOOR_SWING_MS = 1500  # a door takes this long to open or close
_NOISE_SPARE = 509  # the noise table is longer than a frame by this, for a per-frame offset


def scene_names() -> list:
    return sorted(SCENES)


def _background(width: int, height: int) -> bytearray:
    """A textured wall with two pieces of furniture: structure a detector must not mistake for motion."""
    bg = bytearray(width * height)
    for y in range(height):
        row = y * width
        for x in range(width):
            bg[row + x] = 90 + ((x * 7 + y * 3) % 23) + (y * 30) // height
    for x0, x1, y0, y1, level in ((1, 4, 5, 9, 150), (6, 9, 6, 10, 70)):  # tenths of the frame
        for y in range(y0 * height // 10, y1 * height // 10):
            row = y * width
            for x in range(x0 * width // 10, x1 * width // 10):
                bg[row + x] = level
    return bg


class Scene:
    def __init__(self, name: str, width: int, height: int, seed: int = 1) -> None:
        spec = SCENES.get(name)
        if spec is None:
            raise ValueError("unknown scene %r (known: %s)" % (name, ", ".join(scene_names())))
        if width < 8 or height < 8:
            raise ValueError("frames must be at least 8x8")
        self.name = name
        self.width = width
        self.height = height
        self.period_ms = spec["period_ms"]
        self._light = spec["light"]
        self._things = spec["things"]
        self._bg = _background(width, height)
        self._lit = bytearray(width * height)
        self._lit_gain = -1
        rand = Rand(seed)
        amp = spec["noise"]
        self._noise = bytearray(width * height + _NOISE_SPARE)  # offsets from -amp, as bytes
        for i in range(len(self._noise)):
            self._noise[i] = rand.randint(0, 2 * amp)
        self._amp = amp
        self.truth = self._truth()

    def _truth(self) -> list:
        out = []
        for thing in self._things:
            if thing[0] == "walk":
                out.append((thing[1], thing[2]))
            else:  # a door moves while it swings open and while it swings shut
                out.append((thing[1], thing[1] + DOOR_SWING_MS))
                out.append((thing[2], thing[2] + DOOR_SWING_MS))
        out.sort()
        return out

    def gain_at(self, t: int) -> int:
        """Light gain in 1/256 units: a linear drift over the period (slow light change)."""
        g0, g1 = self._light
        return g0 + (g1 - g0) * t // self.period_ms

    def render_into(self, buf: bytearray, t_ms: int) -> None:
        t = t_ms % self.period_ms
        gain = self.gain_at(t)
        if gain != self._lit_gain:  # the light moves slowly: relight the background only when it does
            bg, lit = self._bg, self._lit
            for i in range(len(bg)):
                v = (bg[i] * gain) >> 8
                lit[i] = v if v < 240 else 240
            self._lit_gain = gain
        n = len(buf)
        off = (t_ms // 7) % _NOISE_SPARE
        noise, lit, amp = self._noise, self._lit, self._amp
        for i in range(n):
            v = lit[i] + noise[off + i] - amp
            buf[i] = v if v > 0 else 0  # lit <= 240 and amp < 16: never above 255
        for thing in self._things:
            if thing[0] == "walk":
                self._draw_walker(buf, thing, t)
            else:
                self._draw_door(buf, thing, t)

    def _fill(self, buf: bytearray, x0: int, x1: int, y0: int, y1: int, level: int) -> None:
        w = self.width
        x0 = max(0, x0)
        x1 = min(w, x1)
        if x1 <= x0:
            return
        run = bytes((level,)) * (x1 - x0)
        for y in range(max(0, y0), min(self.height, y1)):
            buf[y * w + x0 : y * w + x1] = run

    def _draw_walker(self, buf: bytearray, thing: tuple, t: int) -> None:
        _, start, end, height_pct, level, direction = thing
        if not start <= t < end:
            return
        w, h = self.width, self.height
        body_w = max(2, w // 8)
        travel = w + body_w
        x = (t - start) * travel // (end - start) - body_w
        if direction < 0:
            x = w - x - body_w
        body_h = h * height_pct // 100
        self._fill(buf, x, x + body_w, h - body_h, h, level)

    def _draw_door(self, buf: bytearray, thing: tuple, t: int) -> None:
        _, open_at, close_at, level = thing
        if t < open_at or t >= close_at + DOOR_SWING_MS:
            return
        if t < open_at + DOOR_SWING_MS:
            share = (t - open_at) * 256 // DOOR_SWING_MS
        elif t < close_at:
            share = 256
        else:
            share = 256 - (t - close_at) * 256 // DOOR_SWING_MS
        w, h = self.width, self.height
        door_x, door_w = w * 6 // 10, w * 3 // 10  # the opening shows the dark room behind
        self._fill(buf, door_x, door_x + door_w * share // 256, h // 6, h, level)
