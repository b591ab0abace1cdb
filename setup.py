"""Only one addition to pyproject.toml: a wheel carries the built web client.

When ``web/dist`` has been built (``make web``), building the package copies it
into ``tidings/web/`` so that an installed server can serve it at ``/`` (point
``--web-dir`` / ``TIDINGS_WEB_DIR`` there, or let the server find it).
Editable installs serve ``web/dist`` from the source tree and copy nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WEB_DIST = Path(__file__).resolve().parent / "web" / "dist"


class BuildWithWebClient(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode or not (WEB_DIST / "index.html").is_file():
            return
        target = Path(self.build_lib) / "tidings" / "web"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(WEB_DIST, target)


setup(cmdclass={"build_py": BuildWithWebClient})
