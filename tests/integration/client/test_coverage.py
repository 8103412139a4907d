"""The client's operation table names a client method for every ``/v1`` route.

A route added to the API without a method in ``sealmail.client`` fails here, as does a
table entry whose route was removed or whose method exists on one client only.
"""

from __future__ import annotations

import inspect

from sealmail.app import Services
from sealmail.client import AsyncSealmailClient, SealmailClient
from sealmail.client import operations as ops
from sealmail.intake.api.app import create_api

METHODS = ("get", "put", "post", "patch", "delete")


def test_every_v1_route_has_a_client_method_on_both_clients(services: Services) -> None:
    paths = create_api(services).openapi()["paths"]
    served = {
        (method.upper(), path)
        for path, item in paths.items()
        if path.startswith("/v1/")
        for method in item
        if method in METHODS
    }
    assert served - set(ops.ROUTES) == set(), "routes without a client method"
    assert set(ops.ROUTES) - served == set(), "client methods for routes that are gone"
    for name in ops.ROUTES.values():
        sync_method = getattr(SealmailClient, name, None)
        async_method = getattr(AsyncSealmailClient, name, None)
        assert callable(sync_method), f"SealmailClient.{name} is missing"
        assert callable(async_method), f"AsyncSealmailClient.{name} is missing"
        # Same parameters on both: the two clients stay method for method alike.
        assert inspect.signature(sync_method).parameters.keys() == (
            inspect.signature(async_method).parameters.keys()
        ), name
