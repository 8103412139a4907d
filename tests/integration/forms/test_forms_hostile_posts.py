"""Hostile posts to a hosted form (too many fields, a multipart body without a boundary or a
part without a name, a boundary bomb of empty parts, more files than the form has file fields)
are answered with the form site's own 4xx page, and nothing is stored; Starlette's parser
refusals were JSON (``{"detail": "Too many fields…"}``) in a patient's browser."""

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.forms.test_forms_hosted import PNG, auth, form_body, token_of

from sealmail.app import Services
from sealmail.forms.tables import form_submissions
from sealmail.intake.api.app import create_api

URLENCODED = {"content-type": "application/x-www-form-urlencoded"}
MULTIPART_B = {"content-type": "multipart/form-data; boundary=b"}


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_api(services), raise_server_exceptions=False) as c:
        yield c


def hostile(token: str) -> dict[str, dict[str, Any]]:
    empty_part = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n'
    return {
        "ten thousand fields": {
            "content": "&".join([f"_token={token}"] + [f"f{i}=x" for i in range(10_000)]),
            "headers": URLENCODED,
        },
        "no boundary": {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
        "a part without a name": {
            "content": b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
            "headers": MULTIPART_B,
        },
        "boundary bomb": {"content": empty_part * 5000 + b"--b--\r\n", "headers": MULTIPART_B},
        "twenty files": {
            "data": {"_token": token},
            "files": [("card", ("c.png", PNG, "image/png"))] * 20,
        },
    }


def test_hostile_posts_get_the_form_sites_page_and_store_nothing(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    r = client.post("/v1/forms", json=form_body(), headers=auth(tenant))
    assert r.status_code == 201, r.text
    form_id = r.json()["id"]
    for label, request in hostile(token_of(client, form_id)).items():
        r = client.post(f"/f/{form_id}", follow_redirects=False, **request)
        assert r.status_code == 400, (label, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("text/html"), (label, r.text[:200])
        assert "Please go back, reload the page and send it again" in r.text, label
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(form_submissions)).scalar_one() == 0
