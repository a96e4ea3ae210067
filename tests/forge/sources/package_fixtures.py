"""Tiny registry packages in their real formats (wheel, npm tarball, Debian package), built in a test.

Nothing here is downloaded: the stages are pointed at these files as local archives.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

PROSE = (
    "This guide explains how the widget library is used in practice. It describes the main "
    "functions, what they return and when they should be called, with a short example for each "
    "of them so that a reader can start from the first page and follow along to the end."
)


def make_wheel(path: Path, license_field: str = "MIT") -> Path:
    """``fakepkg-1.0-py3-none-any.whl``: two modules, a minified bundle, a licence file, docs and
    METADATA whose body is the README."""
    metadata = (
        f"Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\nLicense: {license_field}\n"
        "Classifier: License :: OSI Approved :: MIT License\n\n"
        f"# fakepkg\n\n{PROSE}\n"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fakepkg/__init__.py", '"""Fake package."""\n\nfrom fakepkg.core import add\n')
        zf.writestr(
            "fakepkg/core.py",
            'def add(a: int, b: int) -> int:\n    """Sum of a and b."""\n    return a + b\n',
        )
        zf.writestr("fakepkg/static/app.min.js", "var a=1;" * 20)
        zf.writestr("fakepkg/docs/guide.rst", f"Guide\n=====\n\n{PROSE}\n")
        zf.writestr("fakepkg-1.0.dist-info/LICENSE", "MIT License\n\nPermission is hereby granted ...\n")
        zf.writestr("fakepkg-1.0.dist-info/METADATA", metadata)
        zf.writestr("fakepkg-1.0.dist-info/RECORD", "")
    return path


def make_npm_tarball(path: Path) -> Path:
    """``fakejs-2.0.0.tgz`` as ``npm pack`` writes it (everything under ``package/``)."""
    files = {
        "package/package.json": json.dumps({"name": "fakejs", "version": "2.0.0", "license": "ISC"}),
        "package/index.js": "'use strict';\nfunction add(a, b) {\n  return a + b;\n}\nmodule.exports = { add };\n",
        "package/lib/types.d.ts": "export declare function add(a: number, b: number): number;\n",
        "package/dist/fakejs.min.js": "function a(b,c){return b+c}" * 10,
        "package/README.md": f"# fakejs\n\n{PROSE}\n",
        "package/LICENSE": "ISC License\n",
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


ROFF = r""".\" a comment
.TH FAKE 1 "2024" "fake 1.0" "User Commands"
.SH NAME
fake \- do fake things
.SH SYNOPSIS
.B fake
[\fB\-v\fR] \fIFILE\fR
.SH DESCRIPTION
.B fake
reads \fIFILE\fP and writes what it finds \(em nothing more.
.TP
.BR \-v ", " \-\-verbose
Print more.
"""

INFO = (
    "This is fake.info, produced by makeinfo.\n\n\x1f\nFile: fake.info,  Node: Top,  Next: Usage,  Up: (dir)\n\n"
    f"Fake manual\n***********\n\n{PROSE}\n\n\x1f\nFile: fake.info,  Node: Usage,  Prev: Top\n\n"
    "1 Usage\n*******\n\nRun it.\x00\x08[index\x00\x08]\n\n\x1f\nTag Table:\nNode: Top\x7f89\n\x1f\nEnd Tag Table\n"
)

COPYRIGHT = (
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    "Upstream-Name: fake\n\nFiles: debian/*\nCopyright: 2024 Someone\nLicense: GPL-2+\n\n"
    "Files: *\nCopyright: 2024 Fake Authors\nLicense: Apache-2.0\n\nLicense: Apache-2.0\n On Debian systems ...\n"
)


def make_deb(tmp: Path, name: str = "fake-doc") -> Path:
    """A ``<name>_1.0_all.deb`` built with ``dpkg-deb --build`` (no root needed): HTML, a man page, an
    info file, a text guide, a changelog, an image and a symlink."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not available on this machine")
    root = tmp / f"{name}-root"
    doc = root / "usr/share/doc" / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.invalid>\n"
        "Description: fake documentation\n fake\n"
    )
    (doc / "html/_static").mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    (doc / "html/index.html").write_text(
        "<html><head><title>Fake Manual</title></head><body><nav>Home | Next</nav>"
        f"<div class='body'><h1>Fake</h1><p>{PROSE}</p></div></body></html>"
    )
    (doc / "html/genindex.html").write_text("<html><body>index</body></html>")
    (doc / "html/_static/logo.png").write_bytes(b"\x89PNG\r\n")
    (doc / "guide.txt").write_text(PROSE + "\n")
    (doc / "changelog.Debian.gz").write_bytes(gzip.compress(b"fake (1.0) unstable; urgency=low\n"))
    (doc / "elsewhere.html").symlink_to("/usr/share/doc/other/index.html")
    (root / "usr/share/man/man1").mkdir(parents=True)
    (root / "usr/share/man/man1/fake.1.gz").write_bytes(gzip.compress(ROFF.encode()))
    (root / "usr/share/man/de/man1").mkdir(parents=True)
    (root / "usr/share/man/de/man1/fake.1.gz").write_bytes(gzip.compress(b".TH FAKE 1\nDeutsch\n"))
    (root / "usr/share/info").mkdir(parents=True)
    (root / "usr/share/info/fake.info.gz").write_bytes(gzip.compress(INFO.encode()))
    deb = tmp / f"{name}_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb
