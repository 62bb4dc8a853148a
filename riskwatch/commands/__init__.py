"""CLI subcommands that live in their own modules (see ``riskwatch.cli._COMMAND_MODULES``),
and the checks of flag values they share (each raises a ConfigError naming the flag, or the
environment variable the value came from). ``riskwatch.commands.parsing`` is not a
subcommand: it parses the command line for ``riskwatch.cli.main``."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

from riskwatch.errors import ConfigError

__all__ = ["BROKER_ENV", "check_broker", "check_dirs", "check_http_url", "check_new_chdb",
           "make_writable_dir",
           "existing_chdb", "check_outputs", "check_port",
           "nonempty", "number", "signing_key", "positive_float", "positive_int", "redact_url", "same_file", "secret_from_env", "share",
           "simulation_config", "status_line", "warn"]

#: The variable the worker's ``--broker`` defaults to.
BROKER_ENV = "RISKWATCH_BROKER"

# http(s)://[USER[:PASSWORD]@]HOST[:PORT][/path][?query][#fragment]: HOST is a name, an
# IPv4 address or a bracketed IPv6 one. (Grafana takes its credentials from the URL.)
_HTTP_URL = re.compile(r"https?://(?:[^/?#@\s]+@)?(?:\[[0-9A-Fa-f:.]+\]|[\w.-]+)"
                       r"(?::(?P<port>\d+))?(?:[/?#]\S*)?\Z")


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


def redact_url(url: str) -> str:
    """``url`` without the password of its user info, to echo in an error or a log line.

    >>> redact_url("clickhouse://writer:s3cret@10.0.0.5:99999/risk")
    'clickhouse://writer@10.0.0.5:99999/risk'
    >>> redact_url("http://grafana:3000/d/x?from=1")
    'http://grafana:3000/d/x?from=1'
    """
    scheme, sep, rest = url.partition("://")
    # The user info ends at the last '@' before any query or fragment, not at the first
    # '/' as RFC 3986 has it: a password with an unescaped '/' would show otherwise (the
    # price: an '@' in the path of a URL with a port hides that part too).
    end = min((i for i in map(rest.find, "?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not (sep and at and ":" in userinfo):
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{host}{rest[end:]}"


def check_http_url(flag: str, url: str) -> str:
    """``url`` if it is ``http(s)://HOST[:PORT]`` (then any path, query or fragment) with a
    host and a port 1-65535; else a ConfigError naming ``flag``, which shows the URL
    without its password. An HTTP client would take a bad one and fail at each request:
    a sink retries forever what looks like a receiver that is down.

    >>> check_http_url("--alertmanager-url", "http://alertmanager:9093")
    'http://alertmanager:9093'
    >>> check_http_url("--url", "http://admin:pw@[::1]:70000")
    Traceback (most recent call last):
    ...
    riskwatch.errors.ConfigError: --url: port must be 1-65535 in 'http://admin@[::1]:70000'
    """
    match = _HTTP_URL.match(url)
    if not match:
        raise ConfigError(f"{flag}: expected http(s)://HOST[:PORT], got {redact_url(url)!r}")
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise ConfigError(f"{flag}: port must be 1-65535 in {redact_url(url)!r}")
    return url


def number(cast: type, low: float | None = None, high: float | None = None, *,
            positive: bool = False):
    """An argparse type: ``cast`` the text and check its range, with a readable error."""
    what = {int: "a whole number", float: "a number"}[cast]

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):   # float() takes 'nan' and 'inf'; no flag means them
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        # The value as the user typed it: '50', not '50.0'.
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        if high is None and low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low:g}, got {text}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {text}")
        return value
    return parse


positive_int = number(int, positive=True)
positive_float = number(float, positive=True)
share = number(float, 0, 1)


def nonempty(text: str) -> str:
    """An argparse type for names (``--database``, ``--clickhouse-user``): any text but an
    empty or blank one, which was taken as given and failed later, or not at all (an empty
    user written into Grafana's datasource).

    >>> nonempty("")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must not be empty, got ''
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must not be empty, got {text!r}")
    return text


def signing_key(text: str) -> str:
    """An argparse type for HMAC keys (``--webhook-secret``, ``merchant-api --secret``): an
    empty or blank key was taken (or fell back to the environment's without a word), and
    a signature made with an empty key proves nothing: anyone can make it.

    >>> signing_key(" ")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must not be empty: a signature made with an empty key proves nothing
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty: a signature made with an empty "
                                         "key proves nothing")
    return text


def secret_from_env(name: str) -> str | None:
    """``$name``, or None if unset or empty; a blank value (spaces) is a ConfigError, like
    a blank flag: it is set, so it was meant as the key, and it would sign nothing."""
    value = os.environ.get(name)
    if value and not value.strip():
        raise ConfigError(f"${name} is blank: a signature made with an empty key proves nothing; "
                          "set a real key or unset it")
    return value or None


def simulation_config(flags: dict[str, object], **fixed: object):
    """``SimulationConfig(**flags, **fixed)`` for ``simulate`` and ``demo``: the config
    names a field in its error (``orders_per_day must be ...``); for a field that came
    from ``flags`` the error names the flag instead (``--orders-per-day must be ...``).

    >>> simulation_config({"orders_per_day": 5})
    Traceback (most recent call last):
    ...
    riskwatch.errors.ConfigError: --orders-per-day must be between 100 and 50000000 (got 5)
    """
    from riskwatch.simulator import SimulationConfig

    try:
        return SimulationConfig(**flags, **fixed)
    except ConfigError as exc:
        name = str(exc).split(" ", 1)[0].rstrip(":")
        if name not in flags:
            raise
        raise ConfigError(f"--{name.replace('_', '-')}{str(exc)[len(name):]}") from None


def check_broker(url: str | None, *, env: str | None = None) -> str | None:
    """The broker URL to use, refused before anything starts if it is bad: the Kafka
    clients would fail late, with a bare ``ValueError`` traceback (a port that is not a
    number). ``url`` is ``--broker``'s value; with ``env``, a flag not given falls back to
    that variable, and an error names ``$VARIABLE``, not ``--broker`` (the user typed none;
    a flag default of ``os.environ.get(...)`` could not tell the two apart)."""
    source = "--broker"
    if url is None and env:
        url, source = os.environ.get(env) or None, f"${env}"
    if url:
        from riskwatch.broker import bootstrap_from_url
        from riskwatch.errors import BrokerError
        try:
            bootstrap_from_url(url)
        except BrokerError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return url


def same_file(a: Path, b: Path) -> bool:
    # samefile also catches a hard link or a symlink to the same file; the resolved paths
    # catch two spellings of a file that does not exist yet.
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_outputs(outputs: dict[str, str | None], inputs: dict[str, str] | None = None) -> None:
    """Refuse output paths (``{flag: path}``) that cannot work, before any work is done.

    Each of these used to be a traceback, silent data loss or a surprise: a missing
    parent directory, a directory, an unwritable file, two outputs naming one file (the
    last one written wins), an output naming an input (opening it for writing empties
    the input before it is read), ``-`` (a file named ``-`` was made: only the events of
    ``simulate --out -`` go to stdout, and that caller leaves them out of ``outputs``).
    ``inputs`` is ``{description: path}``; ``-`` is stdin.
    """
    seen: dict[str, Path] = {}
    for flag, path in outputs.items():
        if not path:
            continue
        if path == "-":
            raise ConfigError(f"{flag} -: this output is written to a file, not to stdout (only "
                              "`riskwatch simulate --out -` streams to stdout); give a file name")
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"{flag}: {path} is a directory; give a file name")
        if not p.parent.is_dir():
            raise ConfigError(f"{flag}: directory {p.parent} does not exist")
        for what, source in (inputs or {}).items():
            if source == "-":
                same = p.exists() and _is_stdin(p)
            else:
                same = same_file(p, Path(source))
            if same:
                raise ConfigError(f"{flag} {path} is the {what}: writing it would destroy "
                                  "the input; give another file name")
        for other, q in seen.items():
            if same_file(p, q):
                raise ConfigError(f"{other} and {flag} both name {path}; give each its own file")
        seen[flag] = p
        existed = p.exists()
        try:   # open it as the run will (nothing is truncated here), and undo a new file
            with open(p, "ab"):
                pass
        except OSError as exc:
            raise ConfigError(f"{flag}: cannot write {path}: {exc.strerror}") from None
        if not existed:
            p.unlink()


def _is_stdin(p: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(sys.stdin.fileno()), p.stat())
    except (OSError, ValueError, AttributeError):  # no stdin, or not a real file
        return False


def check_dirs(dirs: dict[str, str | os.PathLike[str] | None]) -> None:
    """Refuse directory flags (``{flag: path}``) that cannot be made into directories,
    before anything starts: ``mkdir`` would fail late with a FileExistsError or
    NotADirectoryError traceback (for the worker, after its embedded broker started).
    A path that does not exist yet is fine if its nearest existing ancestor is a directory.
    """
    for flag, path in dirs.items():
        if path is None or path == "":
            continue
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise ConfigError(f"{flag}: {os.fspath(path)} exists and is not a directory")
        ancestor = p.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not p.exists() and ancestor.exists() and not ancestor.is_dir():
            raise ConfigError(f"{flag}: cannot make {os.fspath(path)}: {ancestor} is not a directory")


def make_writable_dir(flag: str, path: str | os.PathLike[str]) -> Path:
    """Make directory ``path`` (and its parents) and check that a file can be created in
    it, as the worker will (a temp file, then a rename); a ConfigError naming ``flag`` if
    not. The worker made its checkpoint directory after its embedded broker had started
    (a traceback if it could not), and in a directory it could not write it ran on with
    a traceback every ``--checkpoint-seconds`` and no checkpoint at all, its clean stop
    included, which then lost the open buckets: they are left to the checkpoint."""
    import tempfile

    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot make {os.fspath(path)}: {exc.strerror}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=p)
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot write in {os.fspath(path)}: {exc.strerror}; "
                          "give a directory this user can write") from None
    os.close(fd)
    os.unlink(probe)
    return p


def warn(message: str) -> None:
    """``riskwatch: warning: message`` on stderr: allowed, but probably not what the user
    meant (main() prints errors the same way, as ``riskwatch: error: ...``)."""
    print(f"riskwatch: warning: {message}", file=sys.stderr)


def status_line(line: str) -> None:
    """A periodic status line on stderr (rewritten in place on a terminal)."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + line)
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


_CHDB_HINT = "point it at the --chdb directory of a replay, a worker or `make demo`"


def existing_chdb(path: str, database: str = "riskwatch", flag: str = "--chdb") -> str:
    """``path`` if it holds chDB database ``database``; else a ConfigError. For the
    commands that only read (``report``, ``dashboards check``, ``merchant-api``): opening
    any other path makes chDB create its ``data/ metadata/ store/ tmp/`` there, and the
    tables be created in it, so a mistyped path left a new empty database behind.

    What counts: chDB writes a database's definition to ``metadata/DATABASE.sql`` when
    it creates it (``db migrate``, a replay or a worker with ``--chdb``)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag}: {path} is a file, not a chDB data directory")
    if not p.is_dir():
        raise ConfigError(f"{flag} {path}: no such directory ({_CHDB_HINT})")
    metadata = p / "metadata"
    if not metadata.is_dir():
        raise ConfigError(f"{flag} {path}: not a chDB database (no metadata/ directory in it); "
                          f"{_CHDB_HINT}")
    if not (metadata / f"{database}.sql").is_file():
        found = sorted(f.stem for f in metadata.glob("*.sql") if f.stem not in ("system", "default"))
        have = f"it has {', '.join(found)}" if found else "it has none"
        raise ConfigError(f"{flag} {path}: no database {database!r} in this chDB directory "
                          f"({have}); {_CHDB_HINT}")
    return path


def check_new_chdb(path: str | None, flag: str = "--chdb") -> None:
    """For the commands that create a chDB database (``replay``, ``db migrate``): the
    directory may be new, but its parent must exist, as for an output file's (chDB made
    every missing parent of ``/nonexist/x`` without a word)."""
    if not path:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag}: {path} is a file, not a chDB data directory")
    if not p.exists() and not p.parent.is_dir():
        raise ConfigError(f"{flag}: directory {p.parent} does not exist")

