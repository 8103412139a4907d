"""The suite's cache of FastAPI's pydantic adapters (tests/support/adapter_cache.py) shares an
adapter only between fields that describe the same validation.

No ``from __future__ import annotations``: the routes here read their annotations as the API's
do (``sealmail/intake/api/app.py``); the forward-reference case is spelled out as a string.
"""

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient


def _app(low: int) -> FastAPI:
    app = FastAPI()

    @app.get("/n")
    def n(value: Annotated[int, Query(ge=low, le=500)] = 50) -> dict[str, Any]:
        return {"value": value}

    return app


def _adapter(app: FastAPI) -> object:
    route = next(r for r in app.routes if getattr(r, "path", None) == "/n")
    return route.dependant.query_params[0]._type_adapter  # type: ignore[attr-defined]


def test_the_same_parameter_in_two_apps_shares_one_adapter() -> None:
    assert _adapter(_app(1)) is _adapter(_app(1))


def test_a_different_bound_gets_its_own_adapter_and_validates_by_it() -> None:
    assert _adapter(_app(1)) is not _adapter(_app(10))
    with TestClient(_app(10)) as c:
        assert c.get("/n", params={"value": 5}).status_code == 422
        assert c.get("/n", params={"value": 10}).json() == {"value": 10}
    with TestClient(_app(1)) as c:
        assert c.get("/n", params={"value": 5}).json() == {"value": 5}


def test_a_forward_reference_is_never_shared() -> None:
    def app(low: int) -> FastAPI:
        a = FastAPI()

        @a.get("/n")
        def n(value: "Annotated[int, Query(ge=low, le=500)]" = 50) -> dict[str, Any]:
            return {"value": value}

        return a

    assert _adapter(app(1)) is not _adapter(app(1))


@pytest.mark.parametrize(("default", "other"), [(0, False), (1, True)])
def test_defaults_equal_in_python_but_of_another_type_are_not_confused(
    default: object, other: object
) -> None:
    def app(value: object) -> FastAPI:
        a = FastAPI()

        @a.get("/n")
        def n(flag: Annotated[Any, Query()] = value) -> dict[str, Any]:
            return {"flag": flag}

        return a

    assert _adapter(app(default)) is not _adapter(app(other))
