"""Fetching over HTTP(S): the project's one URL fetcher.

Two callers share one connection path, :func:`open_url`:

- :func:`download` writes the dataset archive to a file (streamed, capped, atomic: a
  temporary file, then a rename, so an interrupted download never looks complete);
- :func:`fetch_bytes` reads an image a *caller of the service* named, into memory.

A URL from a caller is an attack surface (server-side request forgery): it could point
the service at 127.0.0.1, at the cloud metadata address 169.254.169.254, or at a private
network. So every fetch

- accepts http and https only, without user names or passwords;
- resolves the host once and refuses it when *any* of its addresses is loopback, private,
  link-local, multicast, reserved, unspecified or otherwise not globally routable, IPv4 and
  IPv6 alike, looking inside IPv4-mapped, 6to4 and NAT64 IPv6 addresses; numeric hosts in
  any notation the C resolver accepts (``2130706433``, ``0x7f.1``, ``127.1``) are parsed
  here, not left to the resolver;
- connects to exactly the address it checked (no second lookup, so DNS rebinding cannot
  swap the address after the check), with TLS still verified against the host name;
- follows at most 3 redirects, checking each target like the first URL;
- has a connect timeout, a timeout per read and a deadline for the whole fetch (DNS
  included), and a byte cap enforced while the body streams in.

A host refused for its address and a host that does not resolve get one answer,
:class:`HostRefused`, which names no address: otherwise a caller inside a cluster could list
``*.svc.cluster.local`` names and their addresses through the error messages. The detail
(host, addresses, reason) is ``HostRefused.detail``, for the log: the service and the Lambda log
it, the CLI shows it to the operator who ran it.

``allow_private=True`` (``MASKDETECT_ALLOW_PRIVATE_URLS=1`` for the service) lifts the
address rule only (a name that does not resolve is then a plain FetchError that names it).
The dataset download sets it: its URL comes from the project's own settings, not from a
caller, and tests serve it from 127.0.0.1.

Why not a library: ``safehttpx`` (0.2.0) is async-only, lets a
host through when *one* of its addresses is public, asks dns.google over the network when the
local resolver has no public answer, does not re-check redirects and has no body cap;
``advocate`` wraps requests but was last released in 2020. The rules above fit in this
module on the standard library, and ``tests/test_fetch.py`` checks each of them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from . import constants
from .files import atomic_path

CHUNK = 1 << 16
USER_AGENT = "maskdetect (+https://github.com/prajnasb/observations)"
REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(RuntimeError):
    """A fetch failed on the remote side; the message says what to do about it."""


class URLRefused(FetchError):
    """The URL itself is not allowed (scheme, form or address); nothing was sent."""


class HostRefused(URLRefused):
    """The URL's host is not public or does not resolve: one message for both, the detail kept for the log."""

    MESSAGE = "the URL's host is not a public address this service fetches from (or it does not resolve); check the host name"

    def __init__(self, detail: str):
        super().__init__(self.MESSAGE)
        self.detail = detail


class FetchTimeout(FetchError):
    """The remote host did not connect or answer in time."""


class BodyTooLarge(FetchError):
    """The body is larger than the cap."""


@dataclass(frozen=True)
class Limits:
    """How long and how much one fetch may take."""

    connect_timeout: float = constants.URL_CONNECT_TIMEOUT
    read_timeout: float = constants.URL_TOTAL_TIMEOUT  # one read; the deadline below bounds them all
    total_timeout: float | None = constants.URL_TOTAL_TIMEOUT  # None: no deadline (large downloads)
    max_bytes: int = constants.MAX_IMAGE_BYTES
    max_redirects: int = constants.URL_MAX_REDIRECTS


# ---------------------------------------------------------------------------- addresses

_HOST_NAME = re.compile(r"[a-z0-9_.-]+")  # after urlsplit lower-cases it
# Every character the C resolver's inet_aton() reads as part of a numeric IPv4 address.
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` must not be fetched from, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            problem = address_problem(embedded)
            return f"IPv6-wrapped {problem}" if problem else None
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "not globally routable"
    return None


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host stands for, in any notation; None for a host name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))  # 2130706433, 0x7f.1, 127.1, 0177.1
        except OSError:
            return None
    return None


# getaddrinfo() cannot be interrupted; it runs here so that a slow DNS server still
# meets the fetch's deadline (the lookup thread finishes on its own later).
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="maskdetect-dns")


def resolve(host: str, port: int, *, allow_private: bool, timeout: float | None) -> list[tuple]:
    """The socket addresses to connect to, every one of them checked."""
    literal = _literal_address(host)
    if literal is not None:
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        infos = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(literal), port))]
    else:
        lookup = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        try:
            infos = lookup.result(timeout=timeout)
        except concurrent.futures.TimeoutError as error:
            raise FetchTimeout(f"looking up {host} took more than {timeout:.0f} s; try again later") from error
        except (socket.gaierror, UnicodeError) as error:
            if not allow_private:  # told apart from a refused address in the log only
                raise HostRefused(f"{host} does not resolve ({error})") from error
            raise FetchError(f"{host} does not resolve ({error}); check the host name") from error
    usable = [info for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not usable:
        if not allow_private:
            raise HostRefused(f"{host} has no IPv4 or IPv6 address")
        raise FetchError(f"{host} has no IPv4 or IPv6 address")
    if not allow_private:
        for info in usable:
            address = ipaddress.ip_address(info[4][0].split("%")[0])
            problem = address_problem(address)
            if problem:
                shown = host if literal is None or str(literal) == host else f"{host} (= {literal})"
                if str(address) not in shown:
                    shown += f" resolves to {address}, which"
                article = "an" if problem[0] in "aeiou" else "a"
                raise HostRefused(f"{shown} is {article} {problem} address")
    return usable


# ---------------------------------------------------------------------------- connections


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str


DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}


def parse_url(url: str, schemes: tuple[str, ...] = ("http", "https")) -> Target:
    """Check a URL's form (not its address) and split it; URLRefused says what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise URLRefused("the URL is empty; send an http:// or https:// URL of an image")
    url = url.strip()
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise URLRefused("the URL contains spaces or control characters; percent-encode them")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise URLRefused(f"{url!r} is not a valid URL ({error})") from error
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise URLRefused(f"only {' and '.join(f'{s}://' for s in schemes)} URLs are fetched, not {shown}")
    if parts.username is not None or parts.password is not None:
        raise URLRefused("URLs with a user name or password are not fetched")
    host = parts.hostname
    if not host:
        raise URLRefused(f"{url!r} has no host")
    if ":" not in host and not _HOST_NAME.fullmatch(host):
        raise URLRefused(f"{host!r} is not a valid host name")
    if "%" in host:
        raise URLRefused("IPv6 zone identifiers are not fetched")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url, scheme, host, port or DEFAULT_PORTS[scheme], path)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to one checked socket address; the Host header keeps the name."""

    def __init__(self, target: Target, address: tuple, timeout: float, **kwargs):
        super().__init__(target.host, target.port, timeout=timeout, **kwargs)
        self.address = address  # (family, type, proto, canonname, sockaddr)

    def _open_socket(self) -> socket.socket:
        family, kind, proto, _, sockaddr = self.address
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(self.timeout)
            sock.connect(sockaddr)  # an address, never a name: nothing is resolved again
        except BaseException:
            sock.close()
            raise
        return sock

    def connect(self):
        self.sock = self._open_socket()


class _PinnedHTTPSConnection(_PinnedHTTPConnection, http.client.HTTPSConnection):
    """The same over TLS, with the certificate checked against the host name (and SNI)."""

    def __init__(self, target: Target, address: tuple, timeout: float):
        super().__init__(target, address, timeout, context=ssl.create_default_context())

    def connect(self):
        self.sock = self._context.wrap_socket(self._open_socket(), server_hostname=self.host)


class _Deadline:
    """Closes the connection when the whole fetch runs out of time.

    Socket timeouts bound each read; a server trickling one byte per second would still
    pass them forever, so a timer shuts the socket down at the deadline.
    """

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds
        self.expired = False
        self._timer: threading.Timer | None = None

    def remaining(self) -> float | None:
        if self.end is None:
            return None
        left = self.end - time.monotonic()
        if left <= 0:
            self.expired = True
            raise FetchTimeout(f"the fetch took more than {self.seconds:.0f} s; try a faster host or upload the image")
        return left

    def bound(self, timeout: float) -> float:
        left = self.remaining()
        return timeout if left is None else min(timeout, left)

    def watch(self, connection: http.client.HTTPConnection) -> None:
        self.cancel()
        left = self.remaining()
        if left is not None:
            def expire():
                self.expired = True
                with contextlib.suppress(OSError):
                    if connection.sock is not None:
                        connection.sock.shutdown(socket.SHUT_RDWR)

            self._timer = threading.Timer(left, expire)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _connect(target: Target, limits: Limits, deadline: _Deadline, allow_private: bool) -> http.client.HTTPConnection:
    addresses = resolve(target.host, target.port, allow_private=allow_private, timeout=deadline.remaining())
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    failures = []
    for address in addresses:
        connection = kind(target, address, timeout=deadline.bound(limits.connect_timeout))
        deadline.watch(connection)
        try:
            connection.connect()
            return connection
        except ssl.SSLError as error:
            connection.close()
            raise FetchError(f"the TLS handshake with {target.host} failed ({error.reason or error})") from error
        except (TimeoutError, socket.timeout):
            connection.close()
            failures.append(f"{address[4][0]}: no answer within {limits.connect_timeout:.0f} s")
        except OSError as error:
            connection.close()
            failures.append(f"{address[4][0]}: {error.strerror or error}")
    message = f"could not connect to {target.host}:{target.port} ({'; '.join(failures)})"
    if failures and all("no answer" in failure for failure in failures):
        raise FetchTimeout(message)
    raise FetchError(message)


@contextlib.contextmanager
def open_url(
    url: str,
    *,
    allow_private: bool,
    limits: Limits = Limits(),
    accept: str = "*/*",
) -> Iterator[tuple[str, http.client.HTTPResponse, _Deadline]]:
    """GET ``url`` under the rules above; yields (final URL, response with a 2xx status, deadline).

    Read the body with :func:`iter_body`, which keeps to the deadline and the byte cap.
    """
    deadline = _Deadline(limits.total_timeout)
    connection = None
    try:
        for hop in range(limits.max_redirects + 1):
            target = parse_url(url)
            connection = _connect(target, limits, deadline, allow_private)
            connection.sock.settimeout(deadline.bound(limits.read_timeout))
            connection.request(
                "GET",
                target.path,
                headers={"User-Agent": USER_AGENT, "Accept": accept, "Accept-Encoding": "identity", "Connection": "close"},
            )
            response = connection.getresponse()
            if response.status in REDIRECTS:
                location = response.getheader("Location")
                connection.close()
                if not location:
                    raise FetchError(f"{url} redirects (HTTP {response.status}) without saying where to")
                if hop == limits.max_redirects:
                    raise FetchError(f"{target.url} redirects more than {limits.max_redirects} times; give the final URL")
                url = urllib.parse.urljoin(target.url, location)
                continue
            if not 200 <= response.status < 300:
                raise FetchError(f"{target.url} answered HTTP {response.status} {response.reason}")
            yield target.url, response, deadline
            return
    except FetchError:
        raise
    except (TimeoutError, socket.timeout) as error:
        raise FetchTimeout(f"{url} did not answer within {limits.read_timeout:.0f} s; try again later") from error
    except (OSError, http.client.HTTPException) as error:
        if deadline.expired:
            raise FetchTimeout(
                f"fetching {url} took more than {limits.total_timeout:.0f} s; try a faster host or upload the image"
            ) from error
        raise FetchError(f"fetching {url} failed ({error.__class__.__name__}: {error})") from error
    finally:
        deadline.cancel()
        if connection is not None:
            connection.close()


def declared_length(response: http.client.HTTPResponse) -> int | None:
    value = response.getheader("Content-Length")
    return int(value) if value and value.strip().isdigit() else None


def iter_body(url: str, response: http.client.HTTPResponse, deadline: _Deadline, limits: Limits) -> Iterator[bytes]:
    """The body in chunks; BodyTooLarge as soon as it passes the cap, FetchError if cut short."""
    total = declared_length(response)
    if total is not None and total > limits.max_bytes:
        raise BodyTooLarge(f"{url} is {total} bytes, over the {limits.max_bytes}-byte cap")
    received = 0
    while True:
        chunk = response.read1(CHUNK)  # whatever one read returns: the deadline is checked often
        if not chunk:
            break
        received += len(chunk)
        if received > limits.max_bytes:
            raise BodyTooLarge(f"{url} sent more than the {limits.max_bytes}-byte cap")
        yield chunk
        deadline.remaining()
    if deadline.expired:  # the deadline timer shut the socket: the body is cut, not complete
        raise FetchTimeout(f"{url} did not send its body within {deadline.seconds:.0f} s; try a faster host or upload the image")
    if total is not None and received != total:
        raise FetchError(f"{url} ended after {received} of {total} bytes; try again")


# ---------------------------------------------------------------------------- the two callers


def fetch_bytes(
    url: str,
    *,
    allow_private: bool = False,
    limits: Limits = Limits(),
) -> bytes:
    """The body at a caller's ``url``, under every rule above (the service and `maskdetect predict`).

    ``allow_private`` lets it reach loopback and private addresses (Settings.allow_private_urls).
    """
    chunks = []
    with open_url(url, allow_private=allow_private, limits=limits, accept="image/*") as (final_url, response, deadline):
        try:
            chunks.extend(iter_body(final_url, response, deadline, limits))
        except (TimeoutError, socket.timeout, OSError, http.client.HTTPException) as error:
            if deadline.expired or isinstance(error, (TimeoutError, socket.timeout)):
                raise FetchTimeout(f"{final_url} did not send its body in time; try again later") from error
            raise FetchError(f"reading {final_url} failed ({error}); try again") from error
    return b"".join(chunks)


def download(
    url: str,
    destination: Path,
    *,
    timeout: float = 30.0,
    max_bytes: int = 2 << 30,
    progress: bool = True,
    hint: str = "check the network, or pass a local copy with --source DIR / MASKDETECT_DATA_SOURCE=DIR",
) -> Path:
    """Download ``url`` to ``destination`` and return it (the dataset archive, the detector's weights).

    ``timeout`` bounds the connection and each read, not the whole download. The file
    appears only when complete; on any error nothing is left behind. ``hint`` ends the message
    of a failure the network may cause (how to do without it).
    """
    destination = Path(destination)
    limits = Limits(connect_timeout=timeout, read_timeout=timeout, total_timeout=None, max_bytes=max_bytes)
    try:  # the file appears only when complete (atomic_path removes a partial one)
        with atomic_path(destination) as partial, open_url(url, allow_private=True, limits=limits) as (final_url, response, deadline):
            with open(partial, "wb") as out, tqdm(
                total=declared_length(response),
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"download {Path(url).name or url}",
                disable=not progress,
            ) as bar:
                for chunk in iter_body(final_url, response, deadline, limits):
                    out.write(chunk)
                    bar.update(len(chunk))
    except FetchError as error:
        if isinstance(error, (BodyTooLarge, URLRefused)) or "answered HTTP" in str(error):
            raise
        raise FetchError(f"{error}; {hint}") from error
    except (OSError, http.client.HTTPException) as error:
        raise FetchError(f"download of {url} failed ({error}); try again") from error
    return destination
