"""Site secrets: one HMAC root per deployment, shared by every process, surviving rotation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from sealmail.app import Services
from sealmail.store import db
from sealmail.store.tables import site_secrets
from sealmail.tenancy.site_secrets import SiteSecrets


def test_every_process_derives_the_same_keys(services: Services) -> None:
    first = services.site_secrets.key("verp")
    # A second process: its own cache, the same database and master key.
    other = SiteSecrets(services.engine, services.keyfile)
    assert other.key("verp") == first
    assert len(first) == 32
    # Purposes are separated: a VERP key never verifies a link token.
    assert other.key("links") != first


def test_the_root_is_stored_wrapped_not_in_the_clear(services: Services) -> None:
    key = services.site_secrets.key("links")
    with db.reader(services.engine) as conn:
        row = conn.execute(sa.select(site_secrets)).one()
    assert row.name == "root"
    assert row.master_key_id == services.keyfile.active_key_id
    assert len(row.wrapped_secret) > 32
    assert key not in row.wrapped_secret


def test_concurrent_first_use_agrees_on_one_root(services: Services) -> None:
    # Several processes starting at once race to create the root; the loser must adopt the
    # winner's, or tokens signed by one would not verify on another.
    instances = [SiteSecrets(services.engine, services.keyfile) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(lambda s: s.key("verp"), instances))
    assert len(set(keys)) == 1
    with db.reader(services.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(site_secrets)).scalar_one() == 1


def test_master_key_rotation_rewraps_and_keeps_the_keys(services: Services) -> None:
    before = services.site_secrets.key("verp")
    old = services.keyfile.key_ids()
    new = services.keyfile.add_key()
    assert services.site_secrets.rewrap() == 1
    for key_id in old:
        services.keyfile.retire(key_id)
    with db.reader(services.engine) as conn:
        assert conn.execute(sa.select(site_secrets.c.master_key_id)).scalar_one() == new
    fresh = SiteSecrets(services.engine, services.keyfile)
    assert fresh.key("verp") == before
