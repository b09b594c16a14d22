"""Per-app invariants of a simulated fleet: what "nothing went wrong" means for a bed and a camera.

The thermostat's invariants are the runner's (control gaps, records lost or
duplicated). A mixed fleet adds:

* **bed: the safety envelope held** — judged from the simulated truth, not from
  what the device believes: every pad's true temperature stayed within the
  hard limits (``min_c``..``max_c``, give or take ``PAD_MARGIN_C`` for the
  law's hysteresis), and no base section stayed raised longer than
  ``raised_max_ms`` plus the time to drive it flat (a section whose motor
  has a stall fault cannot flatten: it is counted, not judged).
* **camera: clips delivered exactly once** — from the cloud's ``ClipStore``:
  no clip completed twice, no conflicting chunk, no hash failure, and no clip
  the device counts as uploaded (at or below its ``_bulk.camera`` progress,
  still in its ring) missing whole in the cloud. Clips the ring evicted
  before they could go (a long outage fills a small ring), or a RAM ring
  lost at a reboot, are counted as ``dropped_on_device``: the budget's rule,
  not a loss.

A power cycle boots a new ``Device`` (and a new simulated world); the bed
check also judges the worlds of the member's earlier boots (``Member.past``).

``ClipFeed`` keeps a ``ClipStore`` fed through a persistent session that
subscribes again after every reconnect (a broker restart keeps its clips).
"""

from __future__ import annotations

from typing import Any

from cloud_shim.clips import ClipStore
from cloud_shim.service_client import ServiceClient
from hw.sim.bed import bed_models

PAD_MARGIN_C = 1.0
BULK_KEY = "_bulk.camera"


class ClipFeed:
    """The cloud's clip receiver for the simulator: ``ClipStore`` behind a ``ServiceClient``."""

    def __init__(self, host: str, port: int, client_id: str, devices: list[str]) -> None:
        self.store = ClipStore()
        filters = [("bp/%s/clip/+" % dev, 1) for dev in devices]
        self.client = ServiceClient(host, port, client_id, filters, self._feed, clean_session=False)

    def _feed(self, topic: str, payload: bytes) -> None:
        self.store.feed(topic, payload)

    def start(self) -> None:
        self.client.start()

    def stop(self) -> None:
        self.client.stop()


def _app(member: Any, name: str) -> Any:
    for app in member.device.apps:
        if getattr(app, "name", None) == name:
            return app
    return None


def check_beds(members: list[Any]) -> dict[str, Any]:
    """``{"beds", "breaches", "breach_examples", "stalled_sections", "pad_min_c", "pad_max_c", "longest_raised_s"}``."""
    out: dict[str, Any] = {"beds": 0, "breaches": 0, "breach_examples": [], "stalled_sections": 0}
    lows: list[float] = []
    highs: list[float] = []
    raised = [0]
    for member in members:
        if member.app != "bed":
            continue
        out["beds"] += 1
        breaches: list[str] = []
        for device in [*member.past, member.device]:
            _judge_bed(device, breaches, lows, highs, raised, out)
        out["breaches"] += len(breaches)
        if breaches and len(out["breach_examples"]) < 5:
            out["breach_examples"].append("%s: %s" % (member.id, ", ".join(breaches)))
    out["pad_min_c"] = round(min(lows), 2) if lows else None
    out["pad_max_c"] = round(max(highs), 2) if highs else None
    out["longest_raised_s"] = round(max(raised) / 1000, 1)
    return out


def _judge_bed(device: Any, breaches: list[str], lows: list[float], highs: list[float], raised: list[int],
               out: dict[str, Any]) -> None:  # fmt: skip
    """One boot of a bed: its world's pads and base sections against its app's settings."""
    app = next((a for a in device.apps if getattr(a, "name", None) == "bed"), None)
    world = device.world
    if app is None or world is None:
        return
    s = app.settings
    world.sync()
    models = bed_models(world)
    for name in sorted(models):
        model = models[name]
        model.advance()
        if name.startswith("pad."):
            lows.append(model.min_c)
            highs.append(model.max_c)
            if model.min_c < s["min_c"] - PAD_MARGIN_C or model.max_c > s["max_c"] + PAD_MARGIN_C:
                breaches.append("%s %.1f..%.1f C" % (name, model.min_c, model.max_c))
            continue
        section = name.split(".", 1)[1]
        if world.fault_record(section + "_motor") is not None or model.stalled:
            out["stalled_sections"] += 1  # it cannot flatten: the envelope raised a fault instead
            continue
        travel_ms = model.max_pct / model.speed_pct_ms if model.speed_pct_ms > 0 else 0
        allowed = s["raised_max_ms"] + travel_ms + s["stall_ms"] + 2 * s["tick_ms"]
        raised.append(model.longest_raised_ms)
        if model.longest_raised_ms > allowed:
            breaches.append("%s raised %.0f s" % (name, model.longest_raised_ms / 1000))


async def check_cameras(members: list[Any], clips: ClipStore | None) -> dict[str, Any]:
    """``{"cameras", "made", "delivered", "waiting", "dropped_on_device", "lost", "duplicated", ...}``."""
    out: dict[str, Any] = dict.fromkeys(("made", "delivered", "waiting", "dropped_on_device", "lost"), 0)
    out.update(cameras=0, duplicated=0, lost_examples=[])
    for member in members:
        app = _app(member, "camera")
        if app is None:
            continue
        out["cameras"] += 1
        report = clips.report(member.id) if clips is not None else {"completed": [], "completed_more_than_once": []}
        completed = set(report["completed"])
        out["duplicated"] += len(report["completed_more_than_once"])
        entry = await member.store.get_state(BULK_KEY)
        done = entry.value.get("done") or 0 if entry is not None and isinstance(entry.value, dict) else 0
        in_ring = app.ring.ids()
        newest = in_ring[-1] if in_ring else app.next_clip - 1
        lost = [cid for cid in in_ring if cid <= done and cid not in completed]
        out["made"] += newest
        out["delivered"] += len(completed)
        out["waiting"] += sum(1 for cid in in_ring if cid > done and cid not in completed)
        kept = set(in_ring) | completed
        out["dropped_on_device"] += sum(1 for cid in range(1, newest + 1) if cid not in kept)
        out["lost"] += len(lost)
        if lost and len(out["lost_examples"]) < 5:
            out["lost_examples"].append("%s clips %s" % (member.id, lost[:3]))
    if clips is not None:
        counters = clips.counters
        out["duplicated"] += counters["conflicts"] + counters["hash_failures"]
        out["chunks"] = counters["chunks"]
        out["chunk_redeliveries"] = counters["duplicates"]
    return out
