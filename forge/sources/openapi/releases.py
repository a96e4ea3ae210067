"""Which version of the OpenAPI directory package is the newest: one request to an npm registry.

The registry is the one npm itself uses (``npm config get registry``: the user's mirror or proxy
included) unless a URL is given; its answer for a package (the "packument") names the newest
release in ``dist-tags.latest``. The abbreviated form (``application/vnd.npm.install-v1+json``)
is asked for: the full document of a package with many releases is megabytes.
"""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import quote

import httpx


def split_package_spec(spec: str) -> tuple[str, str | None]:
    """``name@version`` → ``(name, version)``; scoped names keep their leading ``@``; no version → None."""
    at = spec.rfind("@")
    if at <= 0:
        return spec, None
    return spec[:at], spec[at + 1 :] or None


def npm_registry_url(npm: str = "npm") -> str:
    """The registry npm is configured to use (``npm config get registry``)."""
    npm_bin = shutil.which(npm)
    if npm_bin is None:
        raise RuntimeError(f"npm is not installed (looked for {npm!r} on PATH): set the registry URL instead")
    proc = subprocess.run([npm_bin, "config", "get", "registry"], capture_output=True, text=True, timeout=60)
    url = proc.stdout.strip()
    if proc.returncode != 0 or not url.startswith(("http://", "https://")):
        raise RuntimeError(
            f"`npm config get registry` gave no URL (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    return url


def latest_version(package: str, registry: str, *, timeout_s: float = 30.0) -> str:
    """``dist-tags.latest`` of ``package`` on ``registry``; an error names the URL and what came back."""
    url = f"{registry.rstrip('/')}/{quote(package, safe='@')}"
    response = httpx.get(
        url,
        headers={"Accept": "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"},
        timeout=timeout_s,
        follow_redirects=True,
    )
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}")
    latest = (response.json().get("dist-tags") or {}).get("latest")
    if not isinstance(latest, str) or not latest:
        raise RuntimeError(f"{url}: the answer has no dist-tags.latest")
    return latest
