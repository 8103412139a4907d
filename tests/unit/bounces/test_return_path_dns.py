"""The DNS guidance names what signed return paths need: an MX and SPF at the return-path domain."""

from __future__ import annotations

from pathlib import Path

from sealmail.app import return_path_config
from sealmail.bounces.return_path import return_path_domain
from sealmail.config import Settings
from sealmail.crypto.dkim import RecordPurpose, dns_records


def test_return_path_domain_is_a_subdomain_of_the_sender_unless_fixed(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert return_path_domain(return_path_config(settings), "Clinic.Example") == "bounces.clinic.example"
    relabelled = settings.model_copy(update={"return_path_label": "rp"})
    assert return_path_domain(return_path_config(relabelled), "clinic.example") == "rp.clinic.example"
    fixed = settings.model_copy(update={"return_path_domain": "Bounce.Sealmail.Example."})
    assert return_path_domain(return_path_config(fixed), "clinic.example") == "bounce.sealmail.example"


def test_records_add_the_return_path_mx_and_spf_only_when_asked() -> None:
    plain = dns_records("clinic.example", [])
    assert all(r.purpose is not RecordPurpose.RETURN_PATH for r in plain)
    records = dns_records("clinic.example", [], return_path=("bounces.clinic.example", "mx.sealmail.example"))
    extra = [(r.name, r.type, r.value) for r in records if r.purpose is RecordPurpose.RETURN_PATH]
    assert extra == [
        ("bounces.clinic.example", "MX", "10 mx.sealmail.example"),
        ("bounces.clinic.example", "TXT", "v=spf1 mx ~all"),
    ]
