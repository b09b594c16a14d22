"""Flash-wear figures of the ``log`` backend: what it wrote per slot, and how long the flash may last.

The model (an estimate; the filesystem underneath levels wear its own way):
a slot's erase-equivalents are the bytes written to it over its life divided
by ``erase_block_bytes``, plus one erase per segment started in it. Divided by
the erase blocks a slot spans, that is the cycles its most worn block has
seen. The projected lifetime is the cycles left (``erase_cycles`` rated) at
the rate seen over the device's uptime (all boots, kept in checkpoints);
None until an hour of uptime was seen (before that the rate is noise).
Slot history (bytes, segment starts) is kept in each segment's start
checkpoint, so the figures survive reboots.
"""

_MS_PER_YEAR = 31557600000
MIN_UPTIME_MS = 3600000  # below this a projected lifetime says nothing


def wear_figures(ring, segment_bytes: int, block: int, cycles_rated: int, state: tuple, uptime_ms: int) -> dict:  # type: ignore[no-untyped-def]
    """Plain numbers, like counters. ``state`` = (snapshot bytes over the device's life, this boot)."""
    blocks_per_slot = (segment_bytes + block - 1) // block
    slots = len(ring.gen) if len(ring.gen) > ring.nominal else ring.nominal
    written = 0
    starts = 0
    worst = 0.0
    total = 0.0
    for slot in range(len(ring.gen)):
        slot_bytes = ring.slot_bytes(slot)
        erases = slot_bytes / block + ring.starts[slot]
        written += slot_bytes
        starts += ring.starts[slot]
        total += erases
        if erases > worst:
            worst = erases
    cycles = worst / blocks_per_slot  # erase cycles of the most worn block
    years = None
    if cycles > 0 and uptime_ms >= MIN_UPTIME_MS:
        left = cycles_rated - cycles
        years = round((left if left > 0 else 0) * uptime_ms / cycles / _MS_PER_YEAR, 3)
    return {
        "slots": slots,
        "segment_bytes_written": written,
        "state_bytes_written": state[0],
        "bytes_written": written + state[0],
        "bytes_written_this_boot": ring.boot_bytes + state[1],
        "segments_started": starts,
        "erase_block_bytes": block,
        "erase_equivalents_total": round(total, 3),
        "erase_equivalents_max": round(worst, 3),
        "erase_equivalents_mean": round(total / slots, 3) if slots else 0,
        "erase_cycles": cycles_rated,
        "block_cycles_max": round(cycles, 4),
        "uptime_ms": uptime_ms,
        "projected_years": years,
    }
