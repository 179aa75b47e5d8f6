"""One delivery attempt: a signed POST to an endpoint, with redirects followed here (each hop's address
checked again, at most ``max_redirects``), connect/read/total timeouts, and at most ``max_response_bytes``
of the answer read before the connection is dropped, so a slow or hostile receiver holds nothing past its
limits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.server.webhooks.address import resolve_checked
from reelcast.server.webhooks.settings import WebhookSettings

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one attempt gave: delivered (a 2xx), or the catalogue error that says why not."""

    status_code: int = 0
    error: ReelcastError | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


def valid_url(url: str) -> httpx.URL:
    """``url`` parsed, or E090: only absolute http(s) URLs with a host are endpoints."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ReelcastError(errors.WEBHOOK_URL_INVALID, f"{url!r} is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ReelcastError(errors.WEBHOOK_URL_INVALID, f"{url!r} is not an absolute http(s) URL")
    return parsed


class Deliverer:
    """Sends delivery attempts through one connection pool, never more than ``max_concurrent_deliveries``
    at once: deliveries have their own bounded pool, so they never take a job's slot."""

    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.max_concurrent_deliveries)
        self._client = httpx.AsyncClient(
            follow_redirects=False,  # followed in attempt(), so that each hop's address is checked
            trust_env=False,  # a proxy from the environment would connect where we did not check
            timeout=httpx.Timeout(
                connect=settings.connect_timeout_seconds,
                read=settings.read_timeout_seconds,
                write=settings.read_timeout_seconds,
                pool=settings.connect_timeout_seconds,
            ),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def attempt(self, url: str, body: bytes, headers: dict[str, str]) -> DeliveryOutcome:
        async with self._slots:
            try:
                async with asyncio.timeout(self._settings.total_timeout_seconds):
                    return await self._follow(valid_url(url), body, headers)
            except ReelcastError as refused:
                return DeliveryOutcome(error=refused)
            except (TimeoutError, httpx.TimeoutException):
                detail = f"no answer within the delivery timeout from {url}"
                return DeliveryOutcome(error=ReelcastError(errors.WEBHOOK_DELIVERY_FAILED, detail))
            except httpx.HTTPError as failure:
                detail = f"{url}: {type(failure).__name__}: {failure}"
                return DeliveryOutcome(error=ReelcastError(errors.WEBHOOK_DELIVERY_FAILED, detail))

    async def _follow(self, url: httpx.URL, body: bytes, headers: dict[str, str]) -> DeliveryOutcome:
        for _hop in range(self._settings.max_redirects + 1):
            status, location = await self._post(url, body, headers)
            if status in _REDIRECTS and location:
                url = valid_url(str(url.join(location)))
                continue
            if 200 <= status < 300:
                return DeliveryOutcome(status_code=status)
            detail = f"{url} answered {status}"
            return DeliveryOutcome(status, ReelcastError(errors.WEBHOOK_DELIVERY_FAILED, detail))
        detail = f"more than {self._settings.max_redirects} redirects from {url}"
        raise ReelcastError(errors.WEBHOOK_TOO_MANY_REDIRECTS, detail)

    async def _post(self, url: httpx.URL, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """POSTs to the checked address of ``url``'s host (Host header and TLS SNI keep the name), reads
        at most the response cap, and gives the status and the ``Location`` header."""
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await resolve_checked(host, port, self._settings)
        target = url.copy_with(host=str(address))
        named = f"[{host}]" if ":" in host else host  # an IPv6 literal is bracketed in Host, as in the URL
        host_header = named if url.port is None else f"{named}:{url.port}"
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        request = self._client.build_request(
            "POST",
            target,
            content=body,
            headers={**headers, "host": host_header, "content-type": "application/json"},
            extensions=extensions,
        )
        response = await self._client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > self._settings.max_response_bytes:
                    detail = f"{url} answered more than {self._settings.max_response_bytes} bytes"
                    raise ReelcastError(errors.WEBHOOK_RESPONSE_TOO_LARGE, detail)
            return response.status_code, response.headers.get("location", "")
        finally:
            await response.aclose()
