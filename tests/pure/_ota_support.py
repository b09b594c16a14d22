"""Shared by the OTA pure tests: the test public keys, and a fresh device root under /tmp per test."""

from tests.pure._tmpdirs import fresh_dir, remove_tree

# The keys the pure tests' signed vectors were made with (tools.otakey; the tests only verify).
PUB = {
    "alg": "ecdsa-p256-sha256",
    "kid": "7d39d2ed2b4c6f01",
    "x": "bd7c73b88b2e9b4ceda62022b2da8be13193a5b56edc26e7df7842e24cd0b5eb",
    "y": "0605ada7bda83ac6a2b80d7e314040fa47ff16b83bac85cedb014451bb7ce71a",
}
OTHER_PUB = {
    "alg": "ecdsa-p256-sha256",
    "kid": "0f8a212d4f085087",
    "x": "088bb9ff22ab291a74c86fc677ba897baadee370cc6129b82d170ba3fc26415c",
    "y": "442da9a716067956d91eaa02b93ad409490e87cd5e758ea6a331a1deb75ba846",
}


def with_root(prefix: str, make):  # type: ignore[no-untyped-def]
    """Decorator: run ``test(make(root))`` in a fresh directory, removed afterwards."""

    def wrap(test):  # type: ignore[no-untyped-def]
        def run() -> None:
            root = fresh_dir(prefix)
            try:
                test(make(root))
            finally:
                remove_tree(root)

        return run

    return wrap
