"""The hosted forms: public pages at ``/f/<form id>``, no JavaScript, no third-party anything.

A plain HTML form posted as multipart: it works in any browser, inside a clinic's page
as an iframe (the form's ``embed_origins`` go into ``frame-ancestors``) or linked.
Conditional fields are shown by a per-form stylesheet (``:has()`` on the chosen value);
without it every field shows and the server still ignores the hidden ones.

Abuse resistance, in the order a post meets it: the per-client limit of every public
page (the role's mount), the form's own per-address hourly limit, the body size cap
(counted while it streams in), the honeypot field, then the signed time-token.  A
honeypot hit gets the same thank-you page a person gets, minus the reference, and
nothing is stored.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sealmail.domain.numerals import exceeds
from sealmail.forms.checking import Upload
from sealmail.forms.definition import FieldDef, FormDefinition
from sealmail.forms.filetypes import EXTENSIONS, MEDIA_TYPES
from sealmail.forms.submissions import FormSubmissions, OutcomeStatus, PublicForm
from sealmail.limits.service import Limiter
from sealmail.web import security, throttle

HONEYPOT = "contact-website"
TOKEN = "_token"  # noqa: S105 — the hidden field's name, not a secret
FORM_OVERHEAD = 256 * 1024  # multipart boundaries and the text fields around the files
STYLE_CSP = "default-src 'none'"


class FormSiteServices(Protocol):
    @property
    def form_submissions(self) -> FormSubmissions: ...
    @property
    def limiter(self) -> Limiter: ...


def css_string(value: str) -> str:
    """A CSS string literal (CSS Syntax §4.3.5 escapes), for values in attribute selectors."""
    out = []
    for ch in value:
        if ch.isalnum() or ch in " -_.,:;/()@":
            out.append(ch)
        else:
            out.append(f"\\{ord(ch):x} ")
    return '"' + "".join(out) + '"'


def condition_css(d: FormDefinition) -> str:
    """Rules that show a conditional field only while its condition (and its parents') holds."""
    rules = []
    for f in d.fields:
        chain = _chain(d, f)
        if not chain:
            continue
        has = "".join(chain)
        rules.append(f".c-{f.name}{{display:none}}\nform{has} .c-{f.name}{{display:block}}")
    return "\n".join(rules) + "\n"


def _chain(d: FormDefinition, f: FieldDef) -> list[str]:
    out: list[str] = []
    cur: FieldDef | None = f
    while cur is not None and cur.show_if is not None:
        target = d.field(cur.show_if.field)
        if target is None:
            break
        value = css_string(cur.show_if.equals)
        if target.type == "select":
            out.append(f":has(select[name={target.name}] option[value={value}]:checked)")
        else:
            out.append(f":has(input[name={target.name}][value={value}]:checked)")
        cur = target
    return out


def frame_csp(origins: list[str]) -> str:
    ancestors = " ".join(["'self'", *origins])
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
        f"frame-ancestors {ancestors}"
    )


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` (counted as it streams, never held whole)."""
    declared = request.headers.get("content-length", "")
    if exceeds(declared, limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def form_environment() -> Environment:
    """The one renderer of a form's fields: the hosted page and the console's preview."""
    env = Environment(loader=PackageLoader("sealmail.forms", "templates"), autoescape=select_autoescape())
    env.globals["accept"] = lambda f: ",".join(
        [*(MEDIA_TYPES[k] for k in f.accept), *(EXTENSIONS[k] for k in f.accept)]
    )
    env.globals["kinds"] = lambda f: ", ".join(k.upper() for k in f.accept)
    return env


def preview_fields(d: FormDefinition) -> Markup:
    """The fields of ``d`` exactly as ``/f`` renders them (autoescaped), for a preview."""
    return Markup(_ENV.get_template("forms_fields.html").render(d=d, values={}, errors={}))  # noqa: S704


_ENV = form_environment()


def create_forms_app(services: FormSiteServices) -> FastAPI:
    """The hosted forms; the role mounts it at ``/f`` behind the per-client limit."""
    subs = services.form_submissions
    env = form_environment()
    css = env.loader.get_source(env, "forms.css")[0] if env.loader else ""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(security.HardenEveryResponse)

    def page(
        request: Request, template: str, form: PublicForm | None, status: int = 200, org: str = "", **ctx: Any
    ) -> Response:
        base = request.scope.get("root_path", "")
        org = form.organization if form else (org or "Secure form")
        html = env.get_template(template).render(base=base, organization=org, **ctx)
        origins = form.definition.embed_origins if form else []
        response = security.harden(HTMLResponse(html, status_code=status), frame_csp(origins), frame=True)
        if origins:
            # frame-ancestors decides; X-Frame-Options cannot name another origin.
            del response.headers["x-frame-options"]
        return response

    def form_page(
        request: Request,
        form: PublicForm,
        *,
        status: int = 200,
        values: Any = None,
        errors: dict[str, str] | None = None,
        notice: str = "",
    ) -> Response:
        return page(
            request,
            "forms_form.html",
            form,
            status,
            title=form.definition.title,
            d=form.definition,
            form_id=form.form_id,
            version=form.version,
            token=subs.token(form.form_id),
            values=values or {},
            errors=errors or {},
            notice=notice,
        )

    def gone(request: Request) -> Response:
        return page(
            request,
            "forms_status.html",
            None,
            404,
            title="Form not available",
            message="This form is not available. Please contact the organisation that sent you the link.",
        )

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        # A body the form parser refuses (a broken multipart, too many fields or files) and
        # an unknown route get a page like every other answer here, not FastAPI's JSON.
        if exc.status_code == 404:
            return gone(request)
        return page(
            request,
            "forms_status.html",
            None,
            exc.status_code,
            title="Form not sent",
            message="The form could not be read. Please go back to the form and send it again.",
        )

    @app.get("/static/forms.css", include_in_schema=False)
    def stylesheet() -> Response:
        return security.harden(Response(css, media_type="text/css"), STYLE_CSP)

    @app.get("/receipt/{reference}")
    async def receipt(request: Request, reference: str) -> Response:
        r = await run_in_threadpool(subs.receipt, reference)
        if r is None:
            return gone(request)
        return page(
            request,
            "forms_receipt.html",
            None,
            org=r.organization,
            title=r.title,
            message=r.message,
            receipt=r,
        )

    @app.get("/{form_id}/form.css", include_in_schema=False)
    async def conditions(form_id: str) -> Response:
        form = await run_in_threadpool(subs.public, form_id)
        body = condition_css(form.definition) if form else ""
        return security.harden(Response(body, media_type="text/css"), STYLE_CSP)

    @app.get("/{form_id}")
    async def show(request: Request, form_id: str) -> Response:
        form = await run_in_threadpool(subs.public, form_id)
        return gone(request) if form is None else form_page(request, form)

    @app.post("/{form_id}")
    async def post(request: Request, form_id: str) -> Response:
        form = await run_in_threadpool(subs.public, form_id)
        if form is None:
            return gone(request)
        d = form.definition
        if not security.same_origin(request):
            return page(
                request,
                "forms_status.html",
                form,
                403,
                title=d.title,
                message="This form can only be sent from its own page.",
            )
        address = throttle.client_address(request.scope)
        verdict = await throttle.run(
            services.limiter,
            services.limiter.hit,
            f"form:{form_id}:ip:{address}",
            d.per_address_per_hour,
            3600,
        )
        if not verdict.allowed:
            response = page(
                request,
                "forms_status.html",
                form,
                429,
                title=d.title,
                message="Too many submissions from your network. Please try again later.",
            )
            response.headers["Retry-After"] = str(verdict.reset)
            return response
        body = await read_capped(request, d.max_total_bytes + FORM_OVERHEAD)
        if body is None:
            return page(
                request,
                "forms_status.html",
                form,
                413,
                title=d.title,
                message="The files are too large to send together. Please send smaller files.",
            )
        request._body = body  # starlette's form parser reads the body we already hold
        parsed = await request.form(max_files=len(d.fields) + 1, max_fields=len(d.fields) * 4 + 8)
        try:
            values: dict[str, list[str]] = {}
            uploads: dict[str, list[Upload]] = {}
            for key, item in parsed.multi_items():
                if isinstance(item, UploadFile):
                    uploads.setdefault(key, []).append(Upload(item.filename or "", await item.read()))
                else:
                    values.setdefault(key, []).append(item)
        finally:
            await parsed.close()
        if any(v.strip() for v in values.pop(HONEYPOT, [])):
            return page(
                request, "forms_receipt.html", form, title=d.title, message=d.receipt_message, receipt=None
            )
        token = (values.pop(TOKEN, None) or [""])[0]
        outcome = await run_in_threadpool(subs.submit, form, token, values, uploads, address)
        if outcome.status is OutcomeStatus.INVALID:
            return form_page(request, form, status=422, values=values, errors=outcome.errors)
        if outcome.status is OutcomeStatus.REFUSED:
            notice = (
                "This page was open too long or was already sent. Please check your answers and submit again."
                if outcome.why in ("expired", "used")
                else "Please check your answers and submit again."
            )
            return form_page(request, form, status=409, values=values, notice=notice)
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/receipt/{outcome.receipt}", status_code=303)

    return app
