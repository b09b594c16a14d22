"""``brickproof token``: issue an offline-verifiable LAN token, and sign requests with it.

    brickproof token --bundle certs/ --device-id th-01 --scope read,control --days 365 > th-01.token.json
    brickproof token sign --token th-01.token.json --url http://th-01.local:8080 \\
        --method POST --path /v1/thermostat --body '{"setpoint_c": 21}' --format curl

``token`` prints ``{token, request_key, device, scopes, iat, exp, tid, key_gen}`` as JSON:
keep it like a password (the request key signs control requests). ``sign`` prints the
request headers (JSON, or ``-H`` arguments for curl); it reads the device's boot id and
clock from ``GET /v1/info`` at ``--url``, or takes ``--boot`` and ``--ts``. Format and
rules: ``device/lan/tokencodec.py`` and DESIGN.md, LAN tokens.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from device.errors import ConfigError
from tools.argtypes import positive_int


def add_parser(sub: Any) -> None:
    p = sub.add_parser("token", help="issue a LAN token from a provisioning bundle (or 'token sign' a request)")
    p.add_argument("--bundle", metavar="DIR", help="the provisioning bundle with <id>.lankey")
    p.add_argument("--device-id", metavar="ID")
    p.add_argument(
        "--scope", default="read,control", help="comma-separated: read, control, admin (default %(default)s)"
    )
    p.add_argument("--days", type=float, default=365.0, metavar="N", help="validity in days (default %(default)s)")
    p.add_argument("--key-gen", type=int, default=0, metavar="G", help="key generation (after a rotation)")
    p.set_defaults(handler=handle_issue)
    actions = p.add_subparsers(dest="token_action", required=False)
    s = actions.add_parser("sign", help="the headers of a signed request")
    s.add_argument("--token", required=True, metavar="FILE", help="the JSON printed by 'brickproof token' ('-': stdin)")
    s.add_argument("--method", default="GET")
    s.add_argument("--path", required=True, metavar="TARGET", help="request target as sent: path and query")
    s.add_argument("--body", default="", help="the request body, exactly as sent")
    s.add_argument("--url", metavar="URL", help="the device's base URL: boot and clock from GET /v1/info")
    s.add_argument("--boot", type=int, help="the device's boot id (without --url)")
    s.add_argument("--ts", type=int, metavar="MS", help="the device's monotonic ms (without --url)")
    s.add_argument("--timeout", type=positive_int, default=5, metavar="S", help="for --url (default %(default)s)")
    s.add_argument("--format", choices=("json", "curl"), default="json")
    s.set_defaults(handler=handle_sign)


def handle_issue(args: argparse.Namespace) -> int:
    from cloud_shim.tokens import issue, load_key
    from device.lan.tokencodec import TokenError

    if not args.bundle or not args.device_id:
        raise ConfigError("token", "--bundle and --device-id are required")
    try:
        key = load_key(args.bundle, args.device_id)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            "bundle", f"{args.bundle}: no usable {args.device_id}.lankey ({exc}): run brickproof provision"
        ) from None
    scopes = [s.strip() for s in args.scope.split(",") if s.strip()]
    try:
        issued = issue(key, args.device_id, scopes, args.days, key_gen=args.key_gen)
    except (TokenError, OverflowError) as exc:
        raise ConfigError("token", str(exc)) from None
    sys.stdout.write(json.dumps(issued, indent=2) + "\n")
    return 0


def _read_issued(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        issued = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError("token", f"{path}: {exc}") from None
    if not isinstance(issued, dict) or "token" not in issued or "request_key" not in issued:
        raise ConfigError("token", f"{path}: not the JSON of 'brickproof token' (token, request_key)")
    return issued


def _device_clock(url: str, timeout_s: int) -> tuple[int, int]:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/info", timeout=timeout_s) as resp:
            info = json.loads(resp.read())
        boot, now_ms = int(info["boot"]), int(info["now_ms"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError("url", f"{url}/v1/info: {exc}") from None
    # The reply left the device somewhere in our round trip: add half of it.
    return boot, now_ms + int((time.monotonic() - start) * 500)


def handle_sign(args: argparse.Namespace) -> int:
    from cloud_shim.tokens import sign_headers
    from device.lan.tokencodec import TokenError

    issued = _read_issued(args.token)
    boot: int | None
    ts: int | None
    if args.url:
        boot, ts = _device_clock(args.url, args.timeout)
    elif args.boot is not None and args.ts is not None:
        boot, ts = args.boot, args.ts
    else:
        boot = ts = None  # a read request: the bearer token alone
    try:
        headers = sign_headers(issued, args.method.upper(), args.path, args.body.encode(), boot, ts)
    except (TokenError, ValueError) as exc:
        raise ConfigError("token", str(exc)) from None
    if args.format == "curl":
        sys.stdout.write(" ".join("-H " + shlex.quote(f"{k}: {v}") for k, v in headers.items()) + "\n")
    else:
        sys.stdout.write(json.dumps(headers, indent=2) + "\n")
    return 0
