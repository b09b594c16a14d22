"""Boot: build the environment from a board profile and run a device.

Used by the host CLI (``brickproof run``), the MicroPython offline run and
the benchmarks, so every interpreter boots through the same code. Boards
with a ``sim`` section get simulated time (``VirtualClock``) and a simulated
room; real boards get the monotonic clock and their drivers.
"""

from device import compat
from device.clock import MonotonicClock, VirtualClock
from device.env import Env
from device.errors import ConfigError
from device.log import get_logger
from device.rand import Rand
from device.runtime import Supervisor
from device.store import open_store

_log = get_logger("boot")


def _app_class(name: str):  # type: ignore[no-untyped-def]
    # Imported lazily so a board only loads the apps it runs.
    entry = _APPS.get(name)
    if entry is None:
        raise ConfigError("app", "unknown app %r" % (name,))
    module = __import__("device.apps." + name, None, None, [entry])
    return getattr(module, entry)


_APPS = {"thermostat": "ThermostatApp", "bed": "BedApp", "camera": "CameraApp"}


def build_env(board: dict, speed: float = 0.0, with_link: bool = False, clock=None) -> tuple:  # type: ignore[no-untyped-def]
    """Return ``(env, world)``; ``world`` is the simulation or None on real hardware.

    ``with_link``: keep the board's ``link`` section for ``Device.attach_link``.
    ``clock``: a ``VirtualClock`` to share (a simulated fleet lives in one time);
    by default a simulated board gets its own.
    """
    from hw.build import build_hw

    sim_cfg = board.get("sim")
    rand = Rand(sim_cfg.get("seed", 1) if sim_cfg else 1)
    world = None
    own_clock = clock is None
    if sim_cfg:
        from hw.sim.world import SimWorld

        if own_clock:
            clock = VirtualClock(speed=speed)
        world = SimWorld(sim_cfg, clock, rand)
        if own_clock:
            clock.set_wall_ms(world.start_wall_ms)
    elif clock is None:
        clock = MonotonicClock()
    hw = build_hw(board, world)
    compat.release_modules(
        ("hw.build", "hw.build_more", "hw.mp.factories", "hw.mp.options")
    )  # boot-time code, like device.config: its heap goes back
    store = open_store(board["storage"])
    if world is not None and own_clock:
        # Simulated time waits for the store's real I/O (see VirtualClock.busy); a shared clock's
        # owner decides for all its devices.
        clock.busy = getattr(store, "busy", None)  # type: ignore[union-attr]
    # The running device keeps only what later tasks read of the board (its name, and its link
    # when it will connect), not the whole validated profile: a few KB a 128 KiB heap needs.
    kept = {"name": board["name"]}
    if with_link:
        kept["link"] = board["link"]
    lan = board.get("lan")
    if lan and (lan["http"]["enabled"] or lan["ha"]["enabled"]):
        kept["lan"] = lan  # device/lan reads it
    ota = board.get("ota")
    if ota and ota["enabled"]:
        kept["ota"] = ota  # device/ota/agent.py reads it
    return Env(clock, store, hw, rand, kept), world


class Device:
    """One device: its environment, its apps and the supervisor running them."""

    def __init__(self, env: Env, app_settings: dict, world: object = None) -> None:
        """``app_settings``: ``{app name: settings}`` from ``device.config.configure_apps``."""
        self.env = env
        self.world = world
        self.apps: list = [_app_class(name)(env, app_settings[name]) for name in sorted(app_settings)]
        self.supervisor = Supervisor(env.clock, report=self._report_event)
        self.boot_ms = env.clock.now_ms()
        self.link = None
        self.sync = None
        self.watchdog: object = None  # device.watchdog.WatchdogFeeder when the board has a watchdog
        self.extra_tasks: list = []  # (name, coroutine function) run by start: the LAN server, HA bridge
        self.lan_server: object = None  # device.lan.server.LanServer when the board serves the LAN API
        self.ota: object = None  # device.ota.agent.OtaAgent when the board takes updates over the air
        self.ota_reset = None  # reset(reason) for the OTA agent; None: its default (machine.reset / exit 75)

    def attach_link(self, device_id: str) -> None:
        """Connect to the cloud per the board's ``link`` section (call before ``start``)."""
        from device.link.build import attach_device

        self.link, self.sync = attach_device(self, device_id)

    async def _report_event(self, event: dict) -> None:
        await self.env.store.append("event", event, self.env.clock.now_ms())

    async def start(self) -> None:
        compat.tune_gc()
        await self.env.store.open()
        for app in self.apps:
            await app.setup()
            self.supervisor.spawn(app.name, app.run)
        if self.link is not None:
            self.supervisor.spawn("link", self.link.run)
        lan = self.env.board.get("lan")
        if lan and lan["http"]["enabled"]:
            from device.lan.server import start_lan_server  # loaded only by boards serving the LAN API

            start_lan_server(self)  # appends ("lan", server.run) to extra_tasks
        if self.env.board.get("ota"):
            from device.ota.agent import start_ota  # loaded only by boards taking OTA updates

            start_ota(self)  # appends ("ota", agent.run) to extra_tasks; registers ota_update on the link
        for name, run in self.extra_tasks:
            self.supervisor.spawn(name, run)
        hw = self.env.hw
        if hasattr(hw, "has") and (hw.has("status_led") or hw.has("watchdog")):
            from device.parttasks import start_part_tasks  # loaded only by boards with these parts

            start_part_tasks(self)
        self.supervisor.start()

    def health(self) -> str:
        """The degraded-mode signal: "cloud_ok", "local_only" or "fault" (``device.core.health``)."""
        from device.core.health import device_mode

        return device_mode(self)

    async def stop(self) -> None:
        await self.supervisor.stop()
        await self.env.store.close()

    def status(self) -> dict:
        status = {"t_ms": self.env.clock.now_ms(), "wall_ms": self.env.clock.wall_ms()}
        for app in self.apps:
            status[app.name] = app.status()
        status["tasks_ok"] = self.supervisor.healthy()
        status["health"] = self.health()
        if self.link is not None:
            status["link"] = self.link.state.state
        if self.ota is not None:
            status["ota"] = self.ota.state  # type: ignore[attr-defined]
        return status

    def summary(self) -> dict:
        now = self.env.clock.now_ms()
        records, size = self.env.store.depth()
        summary = {
            "sim_ms": now - self.boot_ms,
            "task_crashes": self.supervisor.crash_total,
            "outbox_records": records,
            "outbox_bytes": size,
            "store_counters": dict(self.env.store.counters),
        }
        for app in self.apps:
            summary[app.name] = app.summary(now)
        if self.link is not None:
            summary["link"] = self.link.stats()
            summary["sync"] = self.sync.stats()  # type: ignore[attr-defined]
        if self.ota is not None:
            summary["ota"] = self.ota.stats()  # type: ignore[attr-defined]
        if self.world is not None:
            summary["world"] = self.world.summary()  # type: ignore[attr-defined]
        return summary


class ComfortMeter:
    """Share of status samples with the true room temperature near the setpoint."""

    def __init__(self, band_c: float = 1.0) -> None:
        self.band_c = band_c
        self.samples = 0
        self.within = 0

    def sample(self, true_c: float, status: dict) -> None:
        sp = status.get("setpoint_c")
        if sp is None or status.get("mode") not in ("heat", "cool"):
            return
        self.samples += 1
        if abs(true_c - sp) <= self.band_c:
            self.within += 1

    def percent(self) -> float | None:
        return 100.0 * self.within / self.samples if self.samples else None


async def run_device(
    board: dict,
    app_settings: dict,
    for_ms: int,
    speed: float = 0.0,
    on_status=None,  # type: ignore[no-untyped-def]
    status_every_ms: int = 60000,
    on_boot=None,
    device_id: str | None = None,
) -> dict:
    """Run one device for ``for_ms`` of (simulated) time; return its summary.

    With ``device_id`` the device also runs its cloud link (the board's ``link``
    section); without, it runs with no network at all.

    ``app_settings`` comes from ``device.config`` (the configuration phase).

    ``on_status(device, status)`` is called every ``status_every_ms``;
    ``on_boot(device)`` once the device has started (apps set up, tasks running).
    """
    env, world = build_env(board, speed, with_link=device_id is not None)
    del board  # see build_env: the profile is not kept while the device runs
    device = Device(env, app_settings, world)
    if device_id is not None:
        device.attach_link(device_id)
    comfort = ComfortMeter()
    clock = env.clock

    async def report_status() -> None:
        while True:
            await clock.sleep_ms(status_every_ms)
            status = device.status()
            if world is not None and "thermostat" in status:
                comfort.sample(world.room.temp_c, status["thermostat"])  # type: ignore[attr-defined]
            if on_status is not None:
                on_status(device, status)

    try:
        await device.start()
    except BaseException:
        await device.stop()  # the store's writer thread would keep a failed boot's process alive
        raise
    if on_boot is not None:
        on_boot(device)
    device.supervisor.spawn("status", report_status)
    try:
        end_ms = device.boot_ms + for_ms
        if isinstance(clock, VirtualClock):
            await clock.run_until(end_ms)
        else:
            await clock.sleep_ms(for_ms)
    finally:
        await device.stop()
    summary = device.summary()
    summary["comfort_pct"] = comfort.percent()
    return summary
