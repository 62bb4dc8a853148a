"""``riskwatch merchant-api``: serve merchants their own quality score; issue their tokens.

::

    export RISKWATCH_MERCHANT_SECRET=...           # or --secret (visible in `ps`)
    riskwatch merchant-api token m0042             # prints m0042's bearer token
    riskwatch merchant-api --scores scores.jsonl --port 8088
    riskwatch merchant-api --chdb riskwatch-data/chdb --port 8088   # once its writer stopped
    riskwatch merchant-api --clickhouse-url clickhouse://reader:pw@ch:9000/riskwatch   # live
"""

from __future__ import annotations

import argparse

from riskwatch.commands import check_port, existing_chdb, secret_from_env, signing_key, warn
from riskwatch.errors import ConfigError

__all__ = ["register"]

_SECRET_ENV = "RISKWATCH_MERCHANT_SECRET"


def _secret(args: argparse.Namespace) -> str:
    secret = args.secret or secret_from_env(_SECRET_ENV)
    if not secret:
        raise ConfigError(f"give --secret or set ${_SECRET_ENV} (the key merchant tokens are made with)")
    return secret


def cmd_merchant_api(args: argparse.Namespace) -> int:
    from riskwatch.merchant_api import ChdbScores, JsonlScores, ServerScores, issue_token, listen, serve
    from sinks.wiring import CLICKHOUSE_ENV, checked_clickhouse_url

    if args.api_command == "token":
        print(issue_token(_secret(args), args.merchant_id))
        return 0
    given = [flag for flag, value in (("--scores", args.scores), ("--chdb", args.chdb),
                                      ("--clickhouse-url", args.clickhouse_url)) if value is not None]
    if len(given) > 1:
        raise ConfigError(f"give one of --scores FILE, --chdb PATH or --clickhouse-url URL, "
                          f"not {' and '.join(given)}")
    # As for `db migrate`: with none of them, the server of $RISKWATCH_CLICKHOUSE_URL.
    url = None if args.scores or args.chdb else checked_clickhouse_url(args.clickhouse_url)[0]
    if not given and url is None:
        raise ConfigError(f"give one of --scores FILE, --chdb PATH or --clickhouse-url URL "
                          f"(or set ${CLICKHOUSE_ENV})")
    check_port("--port", args.port, allow_zero=True)
    secret = _secret(args)
    if args.chdb:   # chDB would create an empty one to serve
        existing_chdb(args.chdb)
    if args.scores:
        source, where, writer = JsonlScores(args.scores), args.scores, "`riskwatch replay --scores-out`"
    elif args.chdb:
        source, where, writer = ChdbScores(args.chdb), args.chdb, "a worker or `riskwatch replay --chdb`"
    else:
        source = ServerScores(url)   # unreachable: one error line naming the server
        where, writer = str(source), "a worker or `riskwatch replay --clickhouse-url`"
    if source.merchants() == 0:
        # Not an error: deployed beside a worker (or a replay) that has not scored anyone
        # yet, the API starts first. Said once, so a wrong path is not a silent wall of 404s.
        warn(f"no merchant scores in {where} yet: every merchant gets 404 until {writer} writes some")
    sock = listen(args.host, args.port)
    # The bound port, not --port: with --port 0 the system picks one.
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"merchant API on http://{host}:{port}/v1/merchants/{{id}}/score "
          f"(data: {where})", flush=True)
    serve(source, secret, sock=sock)
    return 0


def register(subparsers) -> None:
    """Add ``merchant-api`` (and its ``token`` subcommand) to the CLI."""
    from sinks.wiring import CLICKHOUSE_ENV
    # The usage by hand: argparse shows the optional `token` subcommand as a required
    # `token ...`, which read as "a token must be given" (it is the secret that is needed,
    # and it may come from the environment).
    p = subparsers.add_parser(
        "merchant-api", help="HTTP API where a merchant reads its own quality score",
        usage="%(prog)s (--scores FILE | --chdb PATH | --clickhouse-url URL) [--host HOST] [--port PORT]\n"
              "       [--secret SECRET]\n"
              "       %(prog)s token MERCHANT_ID [--secret SECRET]",
        description="Serve GET /v1/merchants/{id}/score; each merchant authenticates with its "
                    "own token, HMAC-SHA256(secret, merchant_id). `merchant-api token ID` prints one. "
                    f"The secret is --secret or, if that is not given, ${_SECRET_ENV} (which "
                    "keeps it out of `ps`): set the variable and neither form needs a flag for it.")
    p.add_argument("--scores", metavar="FILE", help="score records JSONL (riskwatch replay --scores-out)")
    p.add_argument("--chdb", metavar="PATH", help="embedded ClickHouse path holding the scores table "
                   "(once the worker or replay writing it has stopped: a chDB path is one process's)")
    p.add_argument("--clickhouse-url", metavar="URL",
                   help="ClickHouse server holding the scores table, as a running worker writes it "
                        "with --clickhouse-url: clickhouse://user:password@host:9000/riskwatch "
                        f"(a read-only user will do; default ${CLICKHOUSE_ENV} when neither "
                        "--scores nor --chdb is given)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default %(default)s)")
    p.add_argument("--port", type=int, default=8088,
                   help="listen port, 1-65535, or 0 for any free one (default %(default)s)")
    p.add_argument("--secret", type=signing_key, help=f"token secret (default ${_SECRET_ENV})")
    p.set_defaults(func=cmd_merchant_api, api_command=None)
    sub = p.add_subparsers(dest="api_command", metavar="token", title="optional subcommand",
                           prog=p.prog)   # not from the usage above: 'riskwatch merchant-api token'
    t = sub.add_parser("token", help="print a merchant's bearer token (instead of serving)")
    t.add_argument("merchant_id", metavar="MERCHANT_ID")
    # SUPPRESS: not given here, it must not overwrite a --secret given before `token`
    # (argparse copies a subparser's defaults over the parent's values).
    t.add_argument("--secret", type=signing_key, default=argparse.SUPPRESS,
                   help=f"token secret (default ${_SECRET_ENV})")
