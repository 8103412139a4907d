"""Message templates in the console: the list, each template's source, and a preview
rendered in the templates' own sandbox (``templates/render.py``) with sample variables.
Nothing is stored or sent; the rendered HTML is shown cleaned by nh3 like any message.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.portal.sanitize import clean_html
from sealmail.templates.render import Compiled, RenderFailure
from sealmail.templates.store import TemplateStore
from sealmail.users.model import Session
from sealmail.users.roles import Permission

MAX_VARIABLES = 20_000  # characters of JSON sample data


def _variables(raw: str) -> dict[str, Any] | str:
    """The sample variables, or why they are not usable."""
    if len(raw) > MAX_VARIABLES:
        return f"Sample data is limited to {MAX_VARIABLES} characters."
    try:
        data = json.loads(raw or "{}")
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"Sample data is not valid JSON: {exc}"
    return data if isinstance(data, dict) else "Sample data must be a JSON object."


def templates_section(store: TemplateStore) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        def page(request: Request, who: Session, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
            template = store.get(who.tenant_id, name[:200]).template
            return kit.render(
                request, "templates_one.html", status=status, title=f"Template {template.name}", who=who,
                t=template, csrf=kit.csrf(request), **ctx,
            )  # fmt: skip

        @app.get("/templates")
        def listing(request: Request) -> Response:
            who = kit.signed_in(request, Permission.COMPOSE)
            if isinstance(who, Response):
                return who
            rows = store.list(who.tenant_id)
            return kit.render(
                request, "templates_list.html", title="Templates", who=who, rows=rows, csrf=kit.csrf(request)
            )

        @app.get("/templates/{name}")
        def one(request: Request, name: str) -> Response:
            who = kit.signed_in(request, Permission.COMPOSE)
            return who if isinstance(who, Response) else page(request, who, name, data="{}")

        @app.post("/templates/{name}/preview")
        async def preview(request: Request, name: str) -> Response:
            acted = await kit.acting(request, Permission.COMPOSE)
            if isinstance(acted, Response):
                return acted
            who, form = acted
            raw = str(form.get("data", ""))

            def render() -> Response:
                variables = _variables(raw)
                if isinstance(variables, str):
                    return page(request, who, name, 400, data=raw[:MAX_VARIABLES], error=variables)
                source, _ = store.source(who.tenant_id, name[:200])
                result = Compiled(source).render(variables)
                if isinstance(result, RenderFailure):
                    return page(request, who, name, 400, data=raw, error=f"{result.field}: {result.message}")
                html = clean_html(result.html) if result.html else ""
                return page(request, who, name, data=raw, rendered=result, html=html)

            return await run_in_threadpool(render)

    return ConsoleSection(nav=[("/templates", "Templates", Permission.COMPOSE)], mount=mount)
