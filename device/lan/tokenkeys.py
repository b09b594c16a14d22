"""State-cache keys of the LAN token verifier, and the shadow policy of the cloud-synced ones.

Kept apart from ``device.lan.token`` so the link (``device.link.build``) can add the
policies without loading the verifier.

* ``lan.revoked``  list of revoked token ids (hex), set by the cloud (cloud_wins)
* ``lan.key_gen``  the lowest key generation still accepted (int), set by the cloud
  (cloud_wins): raising it retires every token of the older generations at once
* ``_lan.replay``  the replay guard of the current boot (private: never reported)
* ``_lan.wall_s``  the highest wall time (s) the device has seen (private)
"""

REVOKED = "lan.revoked"
KEY_GEN = "lan.key_gen"
REPLAY = "_lan.replay"
WALL_FLOOR = "_lan.wall_s"

SHADOW_POLICIES = {REVOKED: "cloud_wins", KEY_GEN: "cloud_wins"}
