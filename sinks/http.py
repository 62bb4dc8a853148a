"""What the HTTP sinks share: one ``httpx.Client``, URL checks, and which failures to retry.

:class:`~sinks.alertmanager.AlertmanagerSink` and :class:`~sinks.webhook.WebhookSink`
both post to receivers that may be down for a while. A receiver answering 5xx/429, timing
out or refusing the connection is *transient* (the batch is retried with backoff inside
``flush()``, :class:`~sinks.base.BatchingSink`); anything else is not.

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

from riskwatch.errors import ConfigError
from sinks.base import BatchingSink

__all__ = ["HttpSink", "ReceiverUnavailable", "check_urls"]


class ReceiverUnavailable(ConnectionError):
    """A receiver answered 5xx/429 or could not be reached: worth waiting for."""


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

    def teardown(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, ReceiverUnavailable | httpx.TransportError) or super().is_transient(exc)
