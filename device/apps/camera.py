"""The camera app: frames -> motion detector -> event records now, clips for later upload.

Every ``frame_ms`` the task captures a frame into a preallocated pre-roll
ring (``pre_frames + 1`` buffers, no allocation per frame), runs the pure
``device.core.motion`` detector on it, and on a motion event:

* appends ``{"type": "motion", "clip": id, "changed_permille": n}`` to the
  outbox at once (lane ``event``): the cloud hears of it first thing;
* records a clip: the pre-roll frames, the event frame and ``post_frames``
  more, under ``clip_budget_bytes`` (oldest clips evicted first, never the
  newest), in RAM or one file per clip on flash (``device.apps.camera_clips``;
  ``settings["clip_store"]``). With files the RAM holds only the pre-roll, and
  clips survive a reboot; a clip the flash cannot take (ENOSPC) is dropped,
  counted and reported as a ``clip_dropped`` event, and the camera goes on.

Clip ids come from the private state key ``_camera.next_clip`` (and are kept
above the ids of the clip files found at boot) so they keep increasing across
restarts. When the device is online the sync engine uploads clips in chunks
through ``bulk_sources`` (``ClipSource``, ``device.link.bulk``).
``snapshot()`` gives the latest frame for the LAN API. A ``TickMeter``
(``self.meter``) watches that frames keep their pace. It awaits only the
clock and the store.
"""

from device import compat
from device.apps.camera_clips import ClipSource, open_clips
from device.core.motion import MotionDetector
from device.errors import StoreError
from device.log import get_logger
from device.tickmeter import TickMeter, run_ticks

_log = get_logger("camera")

KEY_NEXT_CLIP = "_camera.next_clip"


class CameraApp:
    name = "camera"
    shadow_policies: dict = {}

    def __init__(self, env: object, settings: dict) -> None:
        self.env = env
        self.settings = settings
        s = settings
        self.camera = env.hw.get(s["camera"])  # type: ignore[attr-defined]
        w, h = self.camera.width, self.camera.height  # type: ignore[attr-defined]
        self.width = w
        self.height = h
        self.detector = MotionDetector(
            w,
            h,
            delta=s["delta"],
            min_permille=s["min_permille"],
            cooldown_ms=s["cooldown_ms"],
            confirm_frames=s["confirm_frames"],
            stride=s["stride"],
            adapt_every=s["adapt_every"],
        )
        self.clips = open_clips(s)  # RamClips or FileClips
        self.ring = self.clips.ring  # the bookkeeping: ids, sizes, evictions
        self._slots = [bytearray(w * h) for _ in range(s["pre_frames"] + 1)]
        self._slot = 0  # the slot holding the latest frame
        self._filled = 0  # frames captured so far, up to len(slots)
        self._snapshot_ms: int | None = None
        self._recording_id = 0  # the clip being recorded (0: none); its keeper may have dropped it meanwhile
        self._recorded = 0  # frames of it so far
        self._recording_meta: dict = {}
        self.next_clip = 1
        self.ticks = 0
        self.frames = 0
        self.camera_errors = 0
        self._camera_failing = False
        self.store_errors = 0
        self.clips_done = 0
        self.clips_dropped = 0  # could not be kept (full flash): the event went out, the clip did not
        self.clip_store_failed = False  # the clip directory was unusable at boot: clips in RAM
        self.meter: TickMeter | None = None  # made by run(): frame pace and gaps
        self.frame_us_max = 0
        self.frame_us_total = 0
        self.first_decision_ms: int | None = None  # the first frame judged (boot benchmarks)
        self.latencies_us: list | None = None  # set to [] to record every frame's cost (benchmarks)
        self._next_telemetry_ms = env.clock.now_ms()  # type: ignore[attr-defined]
        self.bulk_sources = [ClipSource(self.clips, s["chunk_bytes"])] if s["upload"] else []

    async def setup(self) -> None:
        try:
            top = self.clips.open()  # files: drop torn clips, book the whole ones
        except OSError as exc:
            # No usable clip directory: keep the newest clip in RAM rather than none (one clip:
            # a board sized for files has no heap for the whole budget). Reported in health().
            from device.apps.camera_clips import RamClips
            from device.core.clipring import CLIP_OVERHEAD

            _log.warning("clip directory unusable, the newest clip kept in RAM: %s", exc)
            top = 0
            self.clip_store_failed = True
            self.clips = RamClips(self._clip_frames() * self.width * self.height + CLIP_OVERHEAD)
            self.ring = self.clips.ring
            for source in self.bulk_sources:
                source.clips = self.clips
        entry = await self.env.store.get_state(KEY_NEXT_CLIP)  # type: ignore[attr-defined]
        if entry is not None and isinstance(entry.value, int):
            self.next_clip = entry.value
        if self.next_clip <= top:
            self.next_clip = top + 1  # the counter was not saved: never reuse a clip id

    async def run(self) -> None:
        try:
            await run_ticks(self, self.settings["frame_ms"])  # an overrun drops frames rather than bursting
        finally:
            if self._recording_id:
                self._seal()  # stopped mid-clip: keep what was recorded, cut short (no file left open)

    async def tick(self) -> None:
        started_us = compat.perf_us()
        self.ticks += 1
        now = self.env.clock.now_ms()  # type: ignore[attr-defined]
        slot = (self._slot + 1) % len(self._slots)
        frame = self._slots[slot]
        try:
            self.camera.capture_into(frame)  # type: ignore[attr-defined]
        except OSError as exc:
            self.camera_errors += 1
            if not self._camera_failing:
                _log.warning("camera capture failed: %s", exc)
                await self._append("event", {"type": "fault", "fault": "camera"}, now)
            self._camera_failing = True
            self.detector.reset()  # the next good frame is the new background
            return
        if self._camera_failing:
            self._camera_failing = False
            await self._append("event", {"type": "fault_cleared", "fault": "camera"}, now)
        self._slot = slot
        self._snapshot_ms = now
        if self._filled < len(self._slots):
            self._filled += 1
        self.frames += 1
        if self.first_decision_ms is None:
            self.first_decision_ms = now
        if self.detector.step(frame, now):
            await self._on_motion(now)
        elif self._recording_id:
            self.clips.write(frame)
            self._recorded += 1
        if self._recording_id and self._recorded >= self._clip_frames():
            await self._finish_clip(now)
        if now >= self._next_telemetry_ms:
            self._next_telemetry_ms = now + self.settings["telemetry_ms"]
            await self._append("telemetry", self._telemetry(), now)
        spent = compat.perf_diff_us(compat.perf_us(), started_us)
        self.frame_us_total += spent
        if spent > self.frame_us_max:
            self.frame_us_max = spent
        if self.latencies_us is not None:
            self.latencies_us.append(spent)

    def _clip_frames(self) -> int:
        return self.settings["pre_frames"] + 1 + self.settings["post_frames"]

    async def _on_motion(self, now: int) -> None:
        clip_id = self.next_clip
        self.next_clip += 1
        permille = self.detector.last_permille
        await self._append("event", {"type": "motion", "clip": clip_id, "changed_permille": permille}, now)
        try:
            await self.env.store.put_state(KEY_NEXT_CLIP, self.next_clip, "local", self.env.clock.wall_ms())  # type: ignore[attr-defined]
        except StoreError as exc:
            self.store_errors += 1
            _log.warning("clip counter not saved: %s", exc)
        if self._recording_id:
            await self._finish_clip(now)  # a new event cuts the running clip short
        if not self.clips.begin(clip_id, self._clip_frames() * self.width * self.height):
            await self._dropped(clip_id, now)
            return
        count = self._filled
        n = len(self._slots)
        for back in range(count - 1, -1, -1):  # oldest pre-roll frame first, the event frame last
            self.clips.write(self._slots[(self._slot - back) % n])
        self._recording_id = clip_id
        self._recorded = count
        self._recording_meta = {"clip": clip_id, "event_ms": now, "pre": count - 1}

    async def _finish_clip(self, now: int) -> None:
        if not self._seal():
            await self._dropped(self._recording_meta["clip"], now)

    def _seal(self) -> bool:
        """End the clip being recorded: hand it to its keeper (False: it could not be kept)."""
        self._recording_id = 0
        meta = self._recording_meta
        meta["w"] = self.width
        meta["h"] = self.height
        meta["frames"] = self._recorded
        meta["frame_ms"] = self.settings["frame_ms"]
        evicted_before = self.ring.evicted
        if not self.clips.finish(meta):
            return False
        self.clips_done += 1
        if self.ring.evicted > evicted_before:
            _log.info("clip budget full: evicted %s", self.ring.evicted_ids)
        return True

    async def _dropped(self, clip_id: int, now: int) -> None:
        self.clips_dropped += 1
        errno = getattr(self.clips, "last_errno", 0)
        _log.warning("clip %d dropped (errno %d)", clip_id, errno)
        await self._append("event", {"type": "clip_dropped", "clip": clip_id, "errno": errno}, now)

    async def _append(self, lane: str, payload: dict, now: int) -> None:
        try:
            await self.env.store.append(lane, payload, now)  # type: ignore[attr-defined]
        except StoreError as exc:
            self.store_errors += 1  # a full or failing store never stops the camera
            _log.warning("outbox append failed: %s", exc)

    def _telemetry(self) -> dict:
        return {
            "frames": self.frames,
            "events": self.detector.events,
            "clips": len(self.ring),
            "clip_bytes": self.ring.used_bytes,
            "evicted": self.ring.evicted,
            "dropped": self.clips_dropped,
            "camera_errors": self.camera_errors,
        }

    def snapshot(self) -> tuple | None:
        """``(width, height, frame bytes, t_ms)`` of the latest frame, or None before the first."""
        if self._snapshot_ms is None:
            return None
        return self.width, self.height, bytes(self._slots[self._slot]), self._snapshot_ms

    def health(self) -> str:
        if self._camera_failing:
            return "fault:camera"
        if self._snapshot_ms is None:
            return "starting"
        if self.store_errors:
            return "degraded:store"
        if self.clips_dropped or self.clip_store_failed:
            return "degraded:clips"
        return "ok"

    def status(self) -> dict:
        return {
            "health": self.health(),
            "moving": self.detector.moving,
            "changed_permille": self.detector.last_permille,
            "events": self.detector.events,
            "clips": len(self.ring),
            "clip_bytes": self.ring.used_bytes,
            "clip_store": self.clips.kind,
        }

    def summary(self, now: int) -> dict:
        out: dict = {
            "ticks": self.ticks,
            "tick_us_mean": self.frame_us_total // self.frames if self.frames else 0,
            "tick_us_max": self.frame_us_max,
            "frames": self.frames,
            "frame_us_mean": self.frame_us_total // self.frames if self.frames else 0,
            "frame_us_max": self.frame_us_max,
            "motion_events": self.detector.events,
            "suppressed_by_cooldown": self.detector.suppressed,
            "camera_errors": self.camera_errors,
            "store_errors": self.store_errors,
            "clips_done": self.clips_done,
            "clips_dropped": self.clips_dropped,
            "control": self.meter.stats() if self.meter is not None else None,
        }
        out["ring"] = self.clips.stats()
        return out
