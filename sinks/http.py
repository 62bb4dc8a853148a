"""What the HTTP sinks share: one ``httpx.Client``, URL checks, and which failures to retry.

:class:`~sinks.alertmanager.AlertmanagerSink` and :class:`~sinks.webhook.WebhookSink`
both post to receivers that may be down for a while. A receiver answering 5xx/408/429,
timing out or refusing the connection is *transient* (the batch is retried with backoff
inside ``flush()``, :class:`~sinks.base.BatchingSink`); anything else is not: another 4xx,
and a URL no request can be made to (``UnsupportedProtocol``, ``InvalidURL``), fail the
same way however long one waits.

>>> check_urls(["http://am:9093"], owner="AlertmanagerSink", flag="--alertmanager-url")
['http://am:9093']
>>> check_urls(["am:9093"], owner="AlertmanagerSink", flag="--alertmanager-url")
Traceback (most recent call last):
...
riskwatch.errors.ConfigError: --alertmanager-url must start with http:// or https:// (got 'am:9093')
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from riskwatch.errors import ConfigError, SinkError
from sinks.base import BatchingSink

__all__ = ["HttpSink", "ReceiverUnavailable", "check_urls", "receiver_name", "retryable_status",
           "retryable_transport"]

# Transport errors of the request itself, not of the receiver: a URL without a host or
# with another scheme, a header httpx cannot send. Retrying sends the same request.
_PERMANENT_TRANSPORT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class ReceiverUnavailable(ConnectionError):
    """A receiver answered 5xx/408/429 or could not be reached: worth waiting for."""


def retryable_status(status: int) -> bool:
    """Whether an HTTP error status may go away by waiting (5xx, 408 timeout, 429 busy).

    >>> [retryable_status(s) for s in (503, 429, 408, 400, 404)]
    [True, True, True, False, False]
    """
    return status >= 500 or status in (408, 429)


def retryable_transport(exc: BaseException) -> bool:
    """Whether an httpx transport error may go away by waiting (a refused connection, a
    timeout), unlike a request that cannot be made (``http://``: UnsupportedProtocol)."""
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, _PERMANENT_TRANSPORT)


def receiver_name(url: str) -> str:
    """``url`` as log lines, dead letters and error messages show it: without the
    password of its user info and without its query and fragment, where chat bridges
    and hook relays carry their key (``.../send?key=...``, ``?access_token=...``): a
    dead letter's detail is shown on the pipeline dashboard.

    >>> receiver_name("https://ops:pw@hooks.example/send?key=k3y#x")
    'https://ops@hooks.example/send'
    """
    from riskwatch.commands import redact_url

    return redact_url(url.split("#", 1)[0].split("?", 1)[0])


def check_urls(urls: Sequence[str], *, owner: str, flag: str) -> list[str]:
    """The URLs as a list; a :class:`ConfigError` naming ``flag`` if none or not http(s)."""
    if not urls:
        raise ConfigError(f"{owner} needs at least one {flag}")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{flag} must start with http:// or https:// (got {url!r})")
    return list(urls)


class HttpSink(BatchingSink):
    """A :class:`BatchingSink` that posts with one ``httpx.Client``.

    Subclasses call :meth:`_init_http` in ``__init__``; a client passed in (tests use
    ``httpx.MockTransport``) is used as is and not closed by the sink.
    """

    def _init_http(self, timeout: float, client: httpx.Client | None) -> None:
        self._timeout = timeout
        self._client = client
        self._own_client = client is None

    def setup(self) -> None:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)

    #: Who receives (for messages), and whether one reachable URL is enough (HA peers).
    receiver: str = "receiver"
    any_url_will_do: bool = False

    def __repr__(self) -> str:
        # The worker's sink error lines name the sink with %r: it was
        # "<sinks.alertmanager.AlertmanagerSink object at 0x7f86a2357190>".
        return f"{type(self).__name__}({', '.join(map(receiver_name, self.urls))})"

    def check_reachable(self) -> None:
        """A SinkError unless the receivers answer HTTP (any status will do).

        For a batch run (``riskwatch replay``), before it starts, as it checks a
        ClickHouse server: a receiver that is down would otherwise be found at the first
        post and retried. The live worker does not call it (it waits for the receiver).
        """
        self.setup()
        assert self._client is not None
        down = []
        for url in self.urls:
            try:
                self._client.head(url)
            except httpx.TransportError as exc:
                down.append(f"{receiver_name(url)} ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())})")
        if down and (len(down) == len(self.urls) or not self.any_url_will_do):
            raise SinkError(f"cannot reach the {self.receiver} at {down[0]}")

    def teardown(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, httpx.TransportError):
            return retryable_transport(exc)
        return isinstance(exc, ReceiverUnavailable) or super().is_transient(exc)
