"""The outage simulator (``brickproof sim``): a fleet of real devices living through a scenario.

    network.py   the fleet's internet: mosquitto, DNS for the endpoints, a fault proxy per endpoint
    fleet.py     the devices: real device code on one shared simulated clock
    recorder.py  what the run looked like (series.json) and whether it held (metrics.json)
    runner.py    one run: scenario events in time order, sampling, the verdict

Every device has its own MQTT session, store and simulated room; they share
the process, the event loop and one ``VirtualClock``. Faults are applied
outside the devices only: DNS answers, the proxies, the broker process.
"""
