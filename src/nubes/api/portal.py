"""Serves the built web portal at `/`, beside the API.

The portal (`portal/`, Vue) is built by `make run` into `nubes/portal_dist`,
inside the package, so that a wheel carries it. It is a single-page app:
its routes (`/organizations/...`) exist only in the browser, so any GET that
is not a file of the build answers `index.html`, and the app routes itself.

`Portal` sits in front of the API as a plain ASGI class and decides by path
alone: the API's paths (`/v1/...`, `/openapi.json`, `/docs`, `/redoc`,
`/health`) and every method but GET and HEAD go to the API untouched, so
an unknown API path still answers the API's JSON 404 and a wrong method its
405, never the portal's page. A portal that is not built (unit tests, a
checkout without npm) is simply not installed: `/` then leads to `/docs`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

PACKAGED = Path(__file__).resolve().parent.parent / "portal_dist"

# The API's paths: never answered with the portal's page.
API_PREFIXES = ("/v1/", "/docs/")
API_PATHS = frozenset({"/v1", "/openapi.json", "/docs", "/redoc", "/health"})

# Vite names built assets by their content hash: they never change.
IMMUTABLE = "public, max-age=31536000, immutable"


def is_api_path(path: str) -> bool:
    return path in API_PATHS or path.startswith(API_PREFIXES)


def portal_directory(configured: str) -> Path | None:
    """The built portal to serve (`NUBES_PORTAL_DIR` or the packaged one), or None."""
    directory = Path(configured) if configured else PACKAGED
    return directory if (directory / "index.html").is_file() else None


class Portal:
    """ASGI middleware: the portal's files and pages, the API for everything else."""

    def __init__(self, app: ASGIApp, directory: Path) -> None:
        self.app = app
        self.root = directory.resolve()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_portal_request(scope):
            response = self._response(scope["path"])
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _is_portal_request(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and not is_api_path(scope["path"])
        )

    def _response(self, path: str) -> Response:
        file = self._file(path)
        if file is not None:
            cache = IMMUTABLE if path.startswith("/assets/") else "no-cache"
            return FileResponse(file, headers={"cache-control": cache})
        if path.startswith("/assets/"):
            # A missing script must not load as HTML (an old tab after an upgrade).
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(self.root / "index.html", headers={"cache-control": "no-cache"})

    def _file(self, path: str) -> Path | None:
        """The file of the build at `path`, never one outside the build."""
        relative = path.lstrip("/")
        if not relative:
            return None
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate
