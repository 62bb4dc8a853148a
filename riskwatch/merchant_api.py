"""The merchant API: a merchant reads its own quality score, components and trend.

``GET /v1/merchants/{merchant_id}/score`` with ``Authorization: Bearer <token>``::

    {"merchant_id": "m0042", "ts": "...", "score": 81.2, "tier": "good",
     "components": {"complaints": 28.1, "complaints_vs_peers": 1.04, ...},
     "change_1d": -1.3, "trend": [{"ts": "...", "score": 80.9}, ...]}

**Tokens.** A merchant's token is ``HMAC-SHA256(secret, merchant_id)`` (hex,
:func:`issue_token`; ``riskwatch merchant-api token MERCHANT_ID``): nothing to store, and
a token opens exactly one merchant. Missing or malformed token: 401; a valid token of
another merchant (or a wrong one): 403, the same answer whether or not that merchant
exists, so ids cannot be probed; 404 only for an authenticated merchant with no score
yet. Rotate by changing the secret.

**Data.** Score records as ``riskwatch replay --scores-out`` writes them
(:class:`JsonlScores`, re-read when the file changes), the ``scores`` table of chDB
(:class:`ChdbScores`: a chDB directory belongs to one process, so once its writer has
stopped) or of a ClickHouse server (:class:`ServerScores`: the scores a running worker
writes with ``--clickhouse-url``, read with ``riskwatch db users``' read-only user).
Score records hold ids and numbers only; responses carry no personal data, and a test
greps them. A store that fails a query answers 503, not a traceback.

>>> issue_token("s3cret", "m0001")[:16]
'b63fdc399fde2cb3'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from riskwatch.errors import ConfigError, SinkError

__all__ = ["ChdbScores", "JsonlScores", "ScoreSource", "ServerScores", "create_app", "issue_token", "listen",
           "serve", "verify_token"]

logger = logging.getLogger(__name__)

#: Score records per merchant returned as the trend (newest last).
TREND_POINTS = 48
_TOKEN = re.compile(r"[0-9a-f]{64}\Z")
_MERCHANT = re.compile(r"[\w.-]{1,64}\Z")


def issue_token(secret: str, merchant_id: str) -> str:
    """The API token of ``merchant_id``: hex HMAC-SHA256 of the id under ``secret``."""
    if not secret:
        raise ConfigError("merchant API secret is empty (set --secret or RISKWATCH_MERCHANT_SECRET)")
    if not merchant_id.strip():   # a token for no merchant would open nobody's scores
        raise ConfigError("merchant id is empty")
    return hmac.new(secret.encode(), merchant_id.encode(), hashlib.sha256).hexdigest()


def verify_token(secret: str, merchant_id: str, token: str) -> bool:
    """True when ``token`` is ``merchant_id``'s (constant-time comparison).

    >>> verify_token("s", "m1", issue_token("s", "m1")), verify_token("s", "m2", issue_token("s", "m1"))
    (True, False)
    """
    return hmac.compare_digest(issue_token(secret, merchant_id), token)


class ScoreSource(Protocol):
    """Where score records come from."""

    def history(self, merchant_id: str, limit: int) -> list[dict]:
        """The merchant's latest ``limit`` score records, oldest first."""


#: Fields of a score record the API answers with and cannot do without.
_SCORE_FIELDS = {"merchant_id": str, "ts": str, "score": (int, float), "tier": str}


def _not_a_score(rec: object) -> str | None:
    """Why ``rec`` is not a merchant score record (``replay --scores-out``), or None.

    >>> _not_a_score({"type": "order", "merchant_id": "m1", "ts": "2026-11-02T08:00:00+08:00"})
    "no 'score', 'tier'"
    """
    if not isinstance(rec, dict):
        return "not a JSON object"
    missing = [k for k in _SCORE_FIELDS if k not in rec]
    if missing:
        return "no " + ", ".join(map(repr, missing))
    wrong = [k for k, kind in _SCORE_FIELDS.items()
             if not isinstance(rec[k], kind) or isinstance(rec[k], bool)]
    return f"wrong type of {', '.join(map(repr, wrong))}" if wrong else None


class JsonlScores:
    """Score records from a JSONL file (``riskwatch replay --scores-out``); the file is
    re-indexed when its size or modification time changes.

    The file is read once at start and must hold score records only: any other JSONL file
    (events, alerts) is refused with its first bad line, instead of answering every
    merchant 200 with ``"score": null``. Lines that change while serving are not
    checked again; bad ones are skipped.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"--scores {self.path} is a directory; give the scores JSONL file "
                              "(riskwatch replay --scores-out)")
        if not self.path.is_file():
            raise ConfigError(f"scores file not found: {self.path}")
        self._stamp: tuple[int, int] | None = None
        self._by_merchant: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        st = self.path.stat()
        self._load(strict=True)
        self._stamp = (st.st_mtime_ns, st.st_size)

    def history(self, merchant_id: str, limit: int) -> list[dict]:
        with self._lock:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self._load()
                self._stamp = (st.st_mtime_ns, st.st_size)
            return self._by_merchant.get(merchant_id, [])[-limit:]

    def merchants(self) -> int:
        """How many merchants have a score in the file (as last read)."""
        return len(self._by_merchant)

    def _load(self, *, strict: bool = False) -> None:
        by: dict[str, list[dict]] = {}
        with self.path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    if strict and line.endswith(b"\n"):  # (no newline: being written right now)
                        raise ConfigError(f"--scores {self.path}:{n}: not JSON; expected merchant "
                                          "score records (riskwatch replay --scores-out)") from None
                    continue
                problem = _not_a_score(rec)
                if problem is None:
                    by.setdefault(rec["merchant_id"], []).append(rec)
                elif strict:
                    raise ConfigError(f"--scores {self.path}:{n}: not a merchant score record "
                                      f"({problem}); expected riskwatch replay --scores-out output")
        for recs in by.values():
            recs.sort(key=lambda r: str(r.get("ts")))
        self._by_merchant = by


class _TableScores:
    """Score records from the ``scores`` table of a ClickHouse store: ``sink`` is the
    store's sink, used for its ``query`` only (nothing is written or migrated)."""

    #: How the store's ``query`` spells the merchant id parameter.
    _MERCHANT_PARAM = "{m:String}"

    def __init__(self, sink, database: str) -> None:
        from zoneinfo import ZoneInfo

        from sinks.clickhouse.schema import TZ

        self.tz = ZoneInfo(TZ)   # the zone the table's time columns are declared in
        self.sink = sink
        self.database = database

    def merchants(self) -> int:
        """How many merchants have a score in the table."""
        [row] = self.sink.query(f"SELECT uniqExact(merchant_id) AS n FROM `{self.database}`.`scores`")
        return int(row["n"])

    def history(self, merchant_id: str, limit: int) -> list[dict]:
        rows = self.sink.query(
            f"SELECT merchant_id, toString(ts) AS ts, score, tier, components, change_1d "
            f"FROM `{self.database}`.`scores` FINAL WHERE merchant_id = {self._MERCHANT_PARAM} "
            f"ORDER BY ts DESC LIMIT {int(limit)}", {"m": merchant_id})
        for row in rows:   # the table's 'YYYY-MM-DD hh:mm:ss[.sss]' as the records' RFC 3339
            row["ts"] = _rfc3339(row["ts"], self.tz)
            if isinstance(row["components"], str):   # an old server's table: the map as JSON
                row["components"] = orjson.loads(row["components"])
        return rows[::-1]


class ChdbScores(_TableScores):
    """Score records from the ``scores`` table of an embedded ClickHouse (chDB) path."""

    def __init__(self, path: str | os.PathLike[str], *, database: str = "riskwatch") -> None:
        from sinks.clickhouse import ChdbSink  # late: chdb is a 500 MB import

        sink = ChdbSink(path, database=database)
        sink.setup()
        super().__init__(sink, database)


class ServerScores(_TableScores):
    """Score records from the ``scores`` table of a ClickHouse server
    (``clickhouse://user:password@host:9000/riskwatch``), which a running worker writes."""

    _MERCHANT_PARAM = "%(m)s"   # clickhouse-driver's

    def __init__(self, url: str) -> None:
        from sinks.clickhouse.server_sink import ClickHouseServerSink

        # A reader: no migration (a read-only user may not, and the writer did)
        sink = ClickHouseServerSink(url, migrate_schema=False)
        sink.setup()   # unreachable: SinkError naming the server
        super().__init__(sink, sink.database)

    def __str__(self) -> str:
        return str(self.sink.address)   # without the password


def _rfc3339(table_time: str, tz: dt.tzinfo) -> str:
    """``2026-11-03 19:00:00.000`` (a DateTime64 as chDB returns it, in the column's zone
    ``tz``) as the score records write it, so both backends answer alike.

    >>> from zoneinfo import ZoneInfo
    >>> china = ZoneInfo("Asia/Shanghai")
    >>> _rfc3339("2026-11-03 19:00:00.000", china), _rfc3339("2026-11-03 19:00:00.250", china)
    ('2026-11-03T19:00:00+08:00', '2026-11-03T19:00:00.250+08:00')
    """
    stamp = dt.datetime.fromisoformat(table_time).replace(tzinfo=tz)
    return stamp.isoformat(timespec="milliseconds" if stamp.microsecond else "seconds")


def _response(history: list[dict]) -> dict:
    latest = history[-1]
    out = {k: latest.get(k) for k in ("merchant_id", "ts", "score", "tier", "components")}
    out["change_1d"] = latest.get("change_1d")
    out["trend"] = [{"ts": r.get("ts"), "score": r.get("score")} for r in history]
    return out


def create_app(source: ScoreSource, secret: str, *,
               log: Callable[[str], None] | None = None) -> Starlette:
    """The ASGI app (serve it with uvicorn; see :func:`serve`)."""
    issue_token(secret, "check")  # raises ConfigError on an empty secret

    async def score(request: Request) -> JSONResponse:
        merchant_id = request.path_params["merchant_id"]
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not _TOKEN.match(token.strip()):
            return JSONResponse({"error": "missing or malformed bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if not _MERCHANT.match(merchant_id) or not verify_token(secret, merchant_id, token.strip()):
            if log:
                log(f"403 for a token on /v1/merchants/{merchant_id[:64]!r}/score")
            return JSONResponse({"error": "this token does not open this merchant"},
                                status_code=403)
        try:
            history = source.history(merchant_id, TREND_POINTS)
        except SinkError as exc:   # the store is down or refuses the query: one line, no traceback
            logger.error("503 for /v1/merchants/%s/score: the scores store failed: %s", merchant_id, exc)
            return JSONResponse({"error": "scores are unavailable, try again later"}, status_code=503)
        if not history:
            return JSONResponse({"error": "no score yet for this merchant"}, status_code=404)
        return JSONResponse(_response(history))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[
        Route("/v1/merchants/{merchant_id}/score", score, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ])


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port) for :func:`serve`.

    Bound here rather than by uvicorn so that the real port of ``--port 0`` is known before
    serving starts (to announce it), and so that a port in use is a one-line error naming
    the flag (uvicorn logs it and exits with status 1).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot listen on it: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(address)
        sock.listen(2048)  # uvicorn's backlog: the announced URL answers before uvicorn is up
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(source: ScoreSource, secret: str, *, host: str = "127.0.0.1", port: int = 8088,
          sock: socket.socket | None = None) -> None:
    """Run the API with uvicorn until interrupted, on ``sock`` (from :func:`listen`) if given."""
    import uvicorn

    sock = sock or listen(host, port)
    config = uvicorn.Config(create_app(source, secret), log_level="info",
                            access_log=False)  # the path holds only merchant ids, but keep logs lean
    uvicorn.Server(config).run(sockets=[sock])
