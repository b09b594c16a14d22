"""Device apps (thermostat, ...): pure control law in device.core plus a thin task here."""
