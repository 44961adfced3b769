"""Downloading over HTTP(S): the project's one URL fetcher.

Streams the body with a connect/read timeout and a size cap, shows a progress bar,
and writes atomically (temporary file, then rename), so an interrupted download
never leaves a file that looks complete.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

CHUNK = 1 << 16
USER_AGENT = "maskdetect (+https://github.com/prajnasb/observations)"


class FetchError(RuntimeError):
    """A download failed; the message says what to do about it."""


def download(
    url: str,
    destination: Path,
    *,
    timeout: float = 30.0,
    max_bytes: int = 2 << 30,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``destination`` and return it.

    The file appears only when complete; on any error nothing is left behind.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise FetchError(f"{url} answered HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(
            f"could not reach {url} ({reason}); check the network, or pass a local "
            "copy with --source DIR / MASKDETECT_DATA_SOURCE=DIR"
        ) from error

    handle, partial = tempfile.mkstemp(dir=destination.parent, prefix=".download-")
    try:
        with response, os.fdopen(handle, "wb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            if total is not None and total > max_bytes:
                raise FetchError(f"{url} is {total} bytes, over the {max_bytes}-byte cap")
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"download {Path(url).name or url}",
                disable=not progress,
            ) as bar:
                while chunk := response.read(CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise FetchError(f"{url} sent more than the {max_bytes}-byte cap")
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise FetchError(
                    f"{url} ended after {received} of {total} bytes; try again"
                )
        os.chmod(partial, 0o644)  # mkstemp makes files private
        os.replace(partial, destination)
    except (OSError, TimeoutError) as error:
        os.unlink(partial)
        raise FetchError(f"download of {url} failed ({error}); try again") from error
    except BaseException:
        os.unlink(partial)
        raise
    return destination
