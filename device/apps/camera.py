"""The camera app: frames -> motion detector -> event records now, clips for later upload.

Every ``frame_ms`` the task captures a frame into a preallocated pre-roll
ring (``pre_frames + 1`` buffers, no allocation per frame), runs the pure
``device.core.motion`` detector on it, and on a motion event:

* appends ``{"type": "motion", "clip": id, "changed_permille": n}`` to the
  outbox at once (lane ``event``): the cloud hears of it first thing;
* records a clip: the pre-roll frames, the event frame and ``post_frames``
  more, kept in a ``device.core.clipring.ClipRing`` under
  ``clip_budget_bytes`` (oldest clips evicted first, never the newest).

Clip ids come from the private state key ``_camera.next_clip`` so they keep
increasing across restarts of the task. When the device is online the sync
engine uploads clips in chunks through ``bulk_sources`` (``ClipSource``,
``device.link.bulk``). ``snapshot()`` gives the latest frame for the LAN API.
It awaits only the clock and the store.
"""

from device import compat
from device.core.clipring import ClipRing
from device.core.motion import MotionDetector
from device.errors import StoreError
from device.log import get_logger

_log = get_logger("camera")

KEY_NEXT_CLIP = "_camera.next_clip"


def sha256_hex(data) -> str:  # type: ignore[no-untyped-def]
    import hashlib
    from binascii import hexlify

    return hexlify(hashlib.sha256(data).digest()).decode()


class ClipSource:
    """What ``device.link.bulk.BulkSender`` uploads: this camera's clips, oldest first."""

    name = "camera"
    kind = "clip"  # the topic: bp/{dev}/clip/{id}

    def __init__(self, ring: ClipRing, chunk_bytes: int) -> None:
        self.ring = ring
        self.chunk_bytes = chunk_bytes

    def next_after(self, item_id: int):  # type: ignore[no-untyped-def]
        """``(id, data, sha256 hex, meta)`` of the oldest clip after ``item_id``, or None."""
        clip = self.ring.next_after(item_id)
        if clip is None:
            return None
        return clip.clip_id, clip.data, clip.meta["sha256"], clip.meta

    def get(self, item_id: int):  # type: ignore[no-untyped-def]
        clip = self.ring.get(item_id)
        if clip is None:
            return None
        return clip.clip_id, clip.data, clip.meta["sha256"], clip.meta


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
        self.ring = ClipRing(s["clip_budget_bytes"])
        self._slots = [bytearray(w * h) for _ in range(s["pre_frames"] + 1)]
        self._slot = 0  # the slot holding the latest frame
        self._filled = 0  # frames captured so far, up to len(slots)
        self._snapshot_ms: int | None = None
        self._recording: list | None = None  # frames of the clip being recorded
        self._recording_meta: dict = {}
        self.next_clip = 1
        self.frames = 0
        self.camera_errors = 0
        self._camera_failing = False
        self.store_errors = 0
        self.clips_done = 0
        self.frame_us_max = 0
        self.frame_us_total = 0
        self.first_decision_ms: int | None = None  # the first frame judged (boot benchmarks)
        self.latencies_us: list | None = None  # set to [] to record every frame's cost (benchmarks)
        self._next_telemetry_ms = env.clock.now_ms()  # type: ignore[attr-defined]
        self.bulk_sources = [ClipSource(self.ring, s["chunk_bytes"])] if s["upload"] else []

    async def setup(self) -> None:
        entry = await self.env.store.get_state(KEY_NEXT_CLIP)  # type: ignore[attr-defined]
        if entry is not None and isinstance(entry.value, int):
            self.next_clip = entry.value

    async def run(self) -> None:
        clock = self.env.clock  # type: ignore[attr-defined]
        frame_ms = self.settings["frame_ms"]
        due = clock.now_ms()
        while True:
            await self.tick()
            due += frame_ms
            now = clock.now_ms()
            if due < now:  # overran: drop frames rather than burst
                due = now
            await clock.sleep_ms(due - now)

    async def tick(self) -> None:
        started_us = compat.perf_us()
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
        elif self._recording is not None:
            self._recording.append(bytes(frame))
        if self._recording is not None and len(self._recording) >= self._clip_frames():
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
        if self._recording is not None:
            await self._finish_clip(now)  # a new event cuts the running clip short
        frames = []
        count = self._filled
        n = len(self._slots)
        for back in range(count - 1, -1, -1):  # oldest pre-roll frame first, the event frame last
            frames.append(bytes(self._slots[(self._slot - back) % n]))
        self._recording = frames
        self._recording_meta = {"clip": clip_id, "event_ms": now, "pre": count - 1}

    async def _finish_clip(self, now: int) -> None:
        frames = self._recording
        self._recording = None
        if not frames:
            return
        data = b"".join(frames)
        meta = self._recording_meta
        meta["w"] = self.width
        meta["h"] = self.height
        meta["frames"] = len(frames)
        meta["frame_ms"] = self.settings["frame_ms"]
        meta["sha256"] = sha256_hex(data)
        evicted = self.ring.add(meta["clip"], data, meta)
        self.clips_done += 1
        if evicted:
            _log.info("clip ring full: evicted %s", evicted)

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
        return "ok"

    def status(self) -> dict:
        return {
            "health": self.health(),
            "moving": self.detector.moving,
            "changed_permille": self.detector.last_permille,
            "events": self.detector.events,
            "clips": len(self.ring),
            "clip_bytes": self.ring.used_bytes,
        }

    def summary(self, now: int) -> dict:
        out: dict = {
            "frames": self.frames,
            "frame_us_mean": self.frame_us_total // self.frames if self.frames else 0,
            "frame_us_max": self.frame_us_max,
            "motion_events": self.detector.events,
            "suppressed_by_cooldown": self.detector.suppressed,
            "camera_errors": self.camera_errors,
            "store_errors": self.store_errors,
        }
        out["ring"] = self.ring.stats()
        return out
