"""Install MicroPython libraries (micropython-lib's HTTP and MQTT clients, the Microdot web
framework, an asyncio MQTT client) the way ``mip`` lays them out on a board.

``mip install urequests`` (or ``umqtt.simple``) copies the package's ``.py`` files into a ``lib``
directory on MicroPython's search path. This does the same from the Python package registry,
where micropython-lib published them: ``micropython-urequests`` 0.9.1,
``micropython-umqtt.simple`` 1.3.4 and ``micropython-umqtt.robust`` 1.0; Microdot is published
there as ``microdot`` (2.7.0), the asyncio MQTT client ``mqtt_async`` as
``micropython-mqtt-async`` (0.7b4). The source archives are fetched by package name through the
registry's simple index (PEP 503; the index pip is configured with, else pip's default), checked
against the SHA-256 pinned below, and only their module files are copied:
``urequests/__init__.py``, ``umqtt/simple.py``, ``umqtt/robust.py``,
``microdot/{__init__,microdot,helpers}.py``, ``mqtt_async.py``. Nothing is changed in them:
scripts import them unmodified (``import urequests``; ``from umqtt.simple import MQTTClient``;
``from microdot import Microdot``; ``from mqtt_async import MQTTClient, config``).

    python tools/fetch_micropython_lib.py DIR     (then MICROPYPATH=DIR, or ~/.micropython/lib)

Already installed files are left alone, so running it again is cheap. Exit status 1 with a
one-line reason when the registry cannot be reached.
"""

from __future__ import annotations

import hashlib
import html.parser
import io
import os
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

# (distribution, version, sha256 of the source archive, {member suffix: installed path})
PACKAGES = (
    (
        "micropython-urequests",
        "0.9.1",
        "15ed0132bcff1a84e87049d9d7780ce26df0810fa674aa89d187e17493d6e3c5",
        {"urequests/__init__.py": "urequests/__init__.py"},
    ),
    (
        "micropython-umqtt.simple",
        "1.3.4",
        "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f",
        {"umqtt/simple.py": "umqtt/simple.py"},
    ),
    (
        "micropython-umqtt.robust",
        "1.0",
        "22a1b8c8e1128281efb13b3020927d07e33c5b747869da2cd77d37983a9ea002",
        {"umqtt/robust.py": "umqtt/robust.py"},
    ),
    (  # a third-party web framework for MicroPython (not micropython-lib's), installed as
        # ``mip install github:miguelgrinberg/microdot/src/microdot`` lays out its core modules
        "microdot",
        "2.7.0",
        "e11f39f0f5564bb5db69f728902740ed592d632ae7a03e24ca3a88cd59ad2f53",
        {
            "microdot/__init__.py": "microdot/__init__.py",
            "microdot/microdot.py": "microdot/microdot.py",
            "microdot/helpers.py": "microdot/helpers.py",
        },
    ),
    (  # a third-party asyncio MQTT client written for boards (Thorsten von Eicken's
        # mqtt_async, upip.install('micropython-mqtt-async')): one module
        "micropython-mqtt-async",
        "0.7b4",
        "c10a8a34064adad629f71f7ea559f7070169ce13c180265509f68f58618eec2b",
        {"mqtt_async.py": "mqtt_async.py"},
    ),
)
TIMEOUT = 60.0


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def index_url() -> str:
    """The index pip uses here: PIP_INDEX_URL, pip's configuration, else pip's default."""
    configured = os.environ.get("PIP_INDEX_URL")
    if not configured:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            check=False,
        )
        configured = result.stdout.strip() if result.returncode == 0 else ""
    if configured:
        return configured.rstrip("/")
    from pip._internal.models.index import PyPI  # pip's own default index

    return str(PyPI.simple_url).rstrip("/")


def _normalized(name: str) -> str:
    return "-".join(name.lower().replace("_", "-").replace(".", "-").split("-"))


def fetch_archive(index: str, name: str, version: str, sha256: str) -> bytes:
    page_url = f"{index}/{_normalized(name)}/"
    with urllib.request.urlopen(page_url, timeout=TIMEOUT) as response:
        parser = _Links()
        parser.feed(response.read().decode("utf-8", "replace"))
    wanted = {f"{name}-{version}.tar.gz".lower(), f"{_normalized(name)}-{version}.tar.gz"}
    for href in parser.links:
        url = urllib.parse.urljoin(page_url, href)
        filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        if filename.lower() in wanted:
            with urllib.request.urlopen(url.split("#", 1)[0], timeout=TIMEOUT) as response:
                data: bytes = response.read()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise RuntimeError(f"{filename}: SHA-256 differs from the pinned one")
            return data
    raise RuntimeError(f"{name} {version}: no source archive in the index")


def install(target: Path) -> list[Path]:
    installed: list[Path] = []
    index: str | None = None
    for name, version, sha256, members in PACKAGES:
        paths = {suffix: target / relative for suffix, relative in members.items()}
        if all(path.exists() for path in paths.values()):
            installed.extend(paths.values())
            continue
        index = index or index_url()
        data = fetch_archive(index, name, version, sha256)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                for suffix, path in paths.items():
                    if member.isfile() and member.name.endswith("/" + suffix):
                        source = archive.extractfile(member)
                        assert source is not None
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(source.read())
                        installed.append(path)
    missing = [
        p for name, *_rest, members in PACKAGES for p in members if not (target / p).exists()
    ]
    if missing:
        raise RuntimeError(f"not found in the archives: {', '.join(missing)}")
    return installed


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: fetch_micropython_lib.py DIR", file=sys.stderr)
        return 2
    try:
        for path in install(Path(argv[0])):
            print(path)
    except (OSError, RuntimeError, tarfile.TarError) as error:
        print(f"fetch_micropython_lib: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
