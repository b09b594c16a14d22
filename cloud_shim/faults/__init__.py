"""Fault injection between a device and its cloud (CPython only).

* ``dnsserver``  ``FakeDnsServer``: UDP DNS on 127.0.0.1 answering per name ok / wrong /
  nxdomain / empty / servfail / timeout / garbage, switchable at runtime
* ``proxy``      ``FaultProxy``: TCP proxy to a broker that refuses, black-holes, resets,
  delays, throttles, slices, goes half-open or drops PUBACKs, per direction
* ``mqttframe``  the MQTT fixed-header framer the proxy uses
* ``loopthread`` an event loop in a daemon thread, behind both servers' sync API
"""
