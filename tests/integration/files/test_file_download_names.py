"""Large-file downloads name the file safely for the sender (API) and the reader (portal)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.delivery.conftest import MxFarm
from tests.integration.files.files_harness import Stack, files_stack
from tests.integration.files.test_file_share_http import _signed_in
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

from sealmail.files.http import filename_from_disposition

HOSTILE = "../../.bashrc\u202efdp.exe"


@pytest.fixture
def stack(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with files_stack(tmp_path, db_url, dns, ca, mx) as s:
        yield s


def test_hidden_path_and_override_never_reach_a_download_name(stack: Stack) -> None:
    file_id, client = _signed_in(stack, 1000, name=HOSTILE)
    try:
        page = client.get(f"/p/files/{file_id}")
        assert "\u202e" not in page.text and "<bdi>.bashrcfdp.exe</bdi>" in page.text
        portal = client.get(f"/p/files/{file_id}/download")
        assert portal.status_code == 200
        assert filename_from_disposition(portal.headers["content-disposition"]) == "bashrcfdp.exe"
    finally:
        client.close()
    with stack.api() as api:
        sender = api.get(f"/v1/files/{file_id}/content")
        assert sender.status_code == 200
        header = sender.headers["content-disposition"]
        assert filename_from_disposition(header) == "bashrcfdp.exe"
        assert 'filename="bashrcfdp.exe"' in header
