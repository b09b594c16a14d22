"""Fresh directories under ``/tmp`` for pure tests that need real files (no ``tempfile`` on MicroPython)."""

import os


def unique_dir(prefix: str) -> str:
    """A name ``/tmp/brickproof-<prefix>-<12 random hex>`` (not created)."""
    name = "/tmp/brickproof-" + prefix + "-"
    for byte in os.urandom(6):
        name += "%02x" % byte
    return name


def fresh_dir(prefix: str) -> str:
    """``unique_dir(prefix)``, created empty."""
    name = unique_dir(prefix)
    os.mkdir(name)
    return name


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything under it; a path never created is fine."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        child = path + "/" + name
        if os.stat(child)[0] & 0x4000:  # S_IFDIR
            remove_tree(child)
        else:
            os.remove(child)
    os.rmdir(path)
