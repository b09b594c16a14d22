"""``SimCamera``: frames of a built-in synthetic scene (``hw.sim.scene``) at the world's time.

The scene runs on the device clock from boot, looping every scene period, so a
simulated camera sees its people and doors at the same simulated moments on
every run with the same seed.
"""

from hw.interfaces_extra import Camera
from hw.sim.scene import Scene


class SimCamera(Camera):
    FAULT_KINDS = ("disconnected",)

    def __init__(self, world, name: str, scene: str, width: int, height: int) -> None:  # type: ignore[no-untyped-def]
        self._world = world
        self.name = name
        self.width = width
        self.height = height
        seed = world.rand.randint(1, 1 << 30)
        self.scene = Scene(scene, width, height, seed)
        self.captures = 0
        world.register_part(name, self.FAULT_KINDS)

    def capture_into(self, buf: bytearray) -> int:
        now = self._world.clock.now_ms()
        fault = self._world.fault_of(self.name, now)
        if fault is not None and fault[0] == "disconnected":
            raise OSError(5, "camera not answering")
        self.scene.render_into(buf, now)
        self.captures += 1
        return now  # type: ignore[no-any-return]


def build_sim_camera(name: str, options: dict, world):  # type: ignore[no-untyped-def]
    """The ``sim_camera`` driver: ``{"scene": NAME, "width": W, "height": H}``; errors name the path."""
    from device.errors import ConfigError
    from hw.sim.scene import scene_names

    scene = options.get("scene", "walk")
    if scene not in scene_names():
        raise ConfigError("hw.%s.scene" % name, "unknown scene %r (built in: %s)" % (scene, ", ".join(scene_names())))
    size = []
    for key, default in (("width", 48), ("height", 32)):
        value = options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 640:
            raise ConfigError("hw.%s.%s" % (name, key), "must be a whole number of pixels 8..640, got %r" % (value,))
        size.append(value)
    return SimCamera(world, name, scene, size[0], size[1])
