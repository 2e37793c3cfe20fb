"""The endpoint table is the API: every route of the app is in it and every entry is a route, a
route added outside it stops the app from being built, and each rule it states is derived from
the code that enforces it."""

from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from serve_app.api import check_routes, create_api
from serve_app.config import AppArgs
from serve_app.routes import Endpoint, Handler, Role, endpoint_table, route_path
from serve_app.settings import ServiceSettings
from tests.unit.api_client import InProcessModel


def app_routes(args: AppArgs, artifact: Path) -> set[tuple[str, str]]:
    api = create_api(InProcessModel(artifact), ServiceSettings(), args)
    found = set()
    for route in api.routes:
        if isinstance(route, Mount):
            found.add((route.path, "GET"))
        else:
            assert isinstance(route, APIRoute | Route), route
            found |= {(route.path, m) for m in route.methods or () if m != "HEAD"}
    return found


@pytest.mark.parametrize("docs", [True, False])
def test_the_app_has_exactly_the_routes_of_the_table(artifact_dir: Path, docs: bool) -> None:
    args = AppArgs(allow_anonymous=True, openapi_docs=docs)
    table = {(endpoint.path, endpoint.method) for endpoint in endpoint_table(args)}
    assert app_routes(args, artifact_dir) == table


def test_a_route_outside_the_table_stops_the_app_from_being_built(artifact_dir: Path) -> None:
    args = AppArgs(allow_anonymous=True)
    api = create_api(InProcessModel(artifact_dir), ServiceSettings(), args)

    async def export() -> bool:
        return True

    api.add_api_route("/api/v1/export", export, methods=["GET"])
    with pytest.raises(RuntimeError, match="GET /api/v1/export is a route the endpoint table"):
        check_routes(api.routes, endpoint_table(args))


def test_only_the_health_check_and_the_docs_are_open() -> None:
    table = endpoint_table(AppArgs(openapi_docs=True))
    open_ones = {endpoint.handler for endpoint in table if endpoint.role is Role.OPEN}
    assert open_ones == {Handler.HEALTH, Handler.DOCS}
    assert all(e.role is Role.OPEN for e in table if e.handler is Handler.DOCS)
    # Reason codes, where an endpoint offers them, need an operator key.
    for endpoint in table:
        assert endpoint.needs(explain=True) is (
            Role.OPERATOR if endpoint.explain else endpoint.role
        )


def test_every_body_has_a_limit_and_is_json() -> None:
    for endpoint in endpoint_table(AppArgs(max_transactions_per_request=10)):
        if endpoint.body is not None:
            assert endpoint.body_limit > 0 and endpoint.media_type == "application/json"
        else:
            assert endpoint.body_limit == 0 and endpoint.media_type is None


def test_matching_is_by_exact_path_method_and_the_docs_files_prefix() -> None:
    table = endpoint_table(AppArgs(openapi_docs=True))
    predict = table.match("/api/v1/predict", "POST")
    assert isinstance(predict, Endpoint) and predict.handler is Handler.PREDICT
    assert table.match("/api/v1/predict", "GET") is None
    assert table.match("/api/v1/predict/", "POST") is None
    assert table.match("/api/v1/utils/health-check/", "HEAD") is table.get(Handler.HEALTH)
    static = table.match("/api/v1/docs/static/swagger-ui.css", "GET")
    assert static is not None and static.handler is Handler.DOCS
    assert table.match("/api/v1/docsX/static/a.css", "GET") is None
    assert endpoint_table(AppArgs(openapi_docs=False)).match("/api/v1/docs", "GET") is None


@pytest.mark.parametrize(
    ("path", "root", "routed"),
    [
        ("/api/v1/predict", "", "/api/v1/predict"),
        ("/fraud/api/v1/predict", "/fraud", "/api/v1/predict"),
        ("/fraud", "/fraud", ""),
        ("/fraudster/api/v1/predict", "/fraud", "/fraudster/api/v1/predict"),
    ],
)
def test_the_route_path_is_starlettes(path: str, root: str, routed: str) -> None:
    assert route_path({"path": path, "root_path": root}) == routed


def test_the_openapi_document_declares_the_key_on_every_operation_that_needs_one(
    artifact_dir: Path,
) -> None:
    args = AppArgs(allow_anonymous=True)
    api = create_api(InProcessModel(artifact_dir), ServiceSettings(), args)
    spec = api.openapi()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert spec["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    for endpoint in endpoint_table(args):
        operation = spec["paths"].get(endpoint.path, {}).get(endpoint.method.lower())
        if endpoint.handler is Handler.DOCS:
            assert operation is None
            continue
        needs = [{"bearer": []}, {"apiKey": []}] if endpoint.role is not Role.OPEN else None
        assert operation.get("security") == needs, endpoint.path
