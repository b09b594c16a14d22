"""The owner's LAN: an HTTP/1.1 JSON API and (``ha*``) Home Assistant over a LAN broker.

Nothing here is on the control path: the server is its own supervised task and
talks to the apps only through the store's state cache and the apps' command
handlers (the bed's through its safety envelope).

* ``httpparse`` -- pure, incremental, size-limited request parsing (``HttpError``)
* ``server``    -- the asyncio streams server: connection cap, read timeouts, counters
* ``routes``    -- the endpoints, auth through ``device.lan.token``
"""
