"""CLI subcommands that live in their own modules (see ``riskwatch.cli._COMMAND_MODULES``),
and the checks of flag values they share (each raises a ConfigError naming the flag)."""

from __future__ import annotations

import re

from riskwatch.errors import ConfigError

__all__ = ["check_http_url", "check_port"]

# http(s)://HOST[:PORT][/path]: HOST is a name, an IPv4 address or a bracketed IPv6 one.
_HTTP_URL = re.compile(r"https?://(?:\[[0-9A-Fa-f:.]+\]|[\w.-]+)(?::(?P<port>\d+))?(?:/\S*)?\Z")


def check_port(flag: str, port: int, *, allow_zero: bool = False) -> int:
    """``port`` if it is a TCP port (0 too with ``allow_zero``: any free port); else a
    ConfigError. argparse's ``type=int`` lets -1 and 70000 through to a socket call,
    which fails with an OverflowError traceback (or accepts them into a config file).

    >>> check_port("--port", 70000)
    Traceback (most recent call last):
    ...
    riskwatch.errors.ConfigError: --port: must be a TCP port 1-65535, got 70000
    """
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ConfigError(f"{flag}: must be a TCP port {low}-65535"
                          f"{' (0: any free port)' if allow_zero else ''}, got {port}")
    return port


def check_http_url(flag: str, url: str) -> str:
    """``url`` if it is ``http(s)://HOST[:PORT][/path]`` with a valid port; else a ConfigError.

    >>> check_http_url("--alertmanager-url", "http://alertmanager:9093")
    'http://alertmanager:9093'
    """
    match = _HTTP_URL.match(url)
    if not match:
        raise ConfigError(f"{flag}: expected http(s)://HOST[:PORT], got {url!r}")
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise ConfigError(f"{flag}: port must be 1-65535 in {url!r}")
    return url
