"""A GPIO line through the kernel's sysfs interface (``/sys/class/gpio``), as a ``Pin``-like object.

``value()`` reads the line, ``value(v)`` drives it: the same shape as
MicroPython's ``machine.Pin``, so the ``hw/mp`` drivers (relay, button,
status LED) run on a Raspberry Pi over it unchanged.

Kernels from 6.6 number the SoC's lines from a base (512 on a Pi 4 under
Raspberry Pi OS), found here from the gpiochip whose label is the SoC's
pin controller. sysfs cannot set pulls: wire one, or set it in
``config.txt`` (``gpio=22=pu``). The ``root`` argument (default ``/sys``)
lets tests use a directory tree instead.
"""

from __future__ import annotations

import os

SOC_LABELS = ("pinctrl-bcm2711", "pinctrl-bcm2835", "pinctrl-bcm2712", "pinctrl-rp1")


def soc_base(root: str = "/sys") -> int:
    """The global number of the SoC's line 0 (0 on old kernels)."""
    gpio_dir = os.path.join(root, "class", "gpio")
    try:
        names = sorted(os.listdir(gpio_dir))
    except OSError as exc:
        raise OSError(exc.errno, "no sysfs GPIO at %s (kernel without CONFIG_GPIO_SYSFS?)" % gpio_dir) from None
    for name in names:
        if not name.startswith("gpiochip"):
            continue
        try:
            with open(os.path.join(gpio_dir, name, "label")) as f:
                label = f.read().strip()
            if label in SOC_LABELS:
                with open(os.path.join(gpio_dir, name, "base")) as f:
                    return int(f.read().strip())
        except (OSError, ValueError):
            continue
    return 0


class SysfsPin:
    def __init__(self, line: int, output: bool, initial: int = 0, root: str = "/sys", base: int | None = None) -> None:
        """Export line ``line`` (SoC numbering, e.g. BCM17) and set its direction.

        An output starts at ``initial`` in the same write as the direction
        (``high``/``low``), so an active-low relay does not click on at export.
        """
        number = (soc_base(root) if base is None else base) + line
        gpio_dir = os.path.join(root, "class", "gpio")
        self.path = os.path.join(gpio_dir, "gpio%d" % number)
        if not os.path.isdir(self.path):
            with open(os.path.join(gpio_dir, "export"), "w") as f:
                f.write(str(number))
        direction = ("high" if initial else "low") if output else "in"
        with open(os.path.join(self.path, "direction"), "w") as f:
            f.write(direction)
        self.line = line
        self.output = output
        self._value_path = os.path.join(self.path, "value")

    def value(self, v: int | bool | None = None) -> int | None:
        if v is None:
            with open(self._value_path) as f:
                return 1 if f.read().strip() == "1" else 0
        with open(self._value_path, "w") as f:
            f.write("1" if v else "0")
        return None
