"""Smoke suite: the deployment is up and wired to the right environment.

Driven by the environment's ``smoke`` settings: health endpoints, API endpoints (any method, a body,
headers, values of the JSON answer; GraphQL queries), the frontend page and every asset it references,
``config.js`` values, the declared DynamoDB tables and S3 buckets, and the promotion precondition
(``requires``: another environment's gate passed recently).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from pytest_deploygate import current_environment
from pytest_deploygate.failures import WriteRefused
from pytest_deploygate.frontend import asset_refs, fetch_config_js, page_url
from pytest_deploygate.http import CheckFailure, json_body

pytestmark = [pytest.mark.gate, pytest.mark.smoke]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    env = current_environment(metafunc.config)
    if env is None:
        return
    params: dict[str, list[tuple[Any, str]]] = {
        "health_check": [(h, h.id) for h in env.smoke.health],
        "endpoint_check": [(e, e.id) for e in env.smoke.endpoints],
        "table": [(t, t) for t in env.tables],
        "bucket": [(b, b) for b in env.buckets],
        # present only where configured (the gate deselects test_promotion elsewhere)
        "requires": [(env.requires, env.requires.environment)] if env.requires.active else [],
    }
    for name, values in params.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, [v for v, _ in values], ids=[i for _, i in values])


def _status_problem(response, expected: int) -> str | None:  # type: ignore[no-untyped-def]
    if response.status_code == expected:
        return None
    return (f"{response.request.method} {response.url} answered {response.status_code}, "
            f"expected {expected}")


def _sampled(client, url: str, deploy_env, gate, metric: str, expected: int,  # type: ignore[no-untyped-def]
             send: Callable[[], Any] | None = None, **labels: str):
    """``smoke.samples`` requests to ``url`` (or calls of ``send``); their median latency is recorded (one
    slow request, e.g. the first on a cold connection or a busy machine, is not a verdict) with every sample.
    Returns the first answer with an unexpected status, else the last answer."""
    responses = []
    for _ in range(deploy_env.smoke.samples):
        response = send() if send is not None else client.get(url)
        responses.append(response)
        if response.status_code != expected:
            break  # a wrong answer is the finding: no more requests needed to judge it
    times = [r.elapsed_ms for r in responses]
    gate.record(metric, statistics.median(times), samples=len(times), values=times, **labels)
    return responses[-1]


def _filled(value: Any, deploy_env) -> Any:  # type: ignore[no-untyped-def]
    """``value`` with ``{stage}``, ``{base_url}``... filled in, in every string of tables and arrays."""
    if isinstance(value, str):
        return deploy_env.format(value)
    if isinstance(value, Mapping):
        return {k: _filled(v, deploy_env) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_filled(v, deploy_env) for v in value]
    return value


def _request(api, check, deploy_env, what: str) -> Callable[[], Any]:  # type: ignore[no-untyped-def]
    """One request of ``check``: its method, headers and body (a GraphQL check POSTs its query as JSON)."""
    kwargs: dict[str, Any] = {}
    if check.headers:
        kwargs["headers"] = _filled(check.headers, deploy_env)
    graphql = getattr(check, "graphql", None)
    if graphql is not None:
        payload: dict[str, Any] = {"query": graphql.query, "variables": _filled(graphql.variables, deploy_env)}
        if graphql.operation_name:
            payload["operationName"] = graphql.operation_name
        kwargs["json"] = payload
    elif isinstance(check.body, str):
        kwargs["data"] = check.body.encode()
    elif check.body is not None:
        kwargs["json"] = check.body

    def send() -> Any:
        try:
            return api.request(check.method, check.path, **kwargs)
        except WriteRefused as exc:
            hint = "" if graphql is not None else (
                " (declare read_only_post = true on the check if this POST only reads)"
                if check.method == "POST" else "")
            raise WriteRefused(f"{what} {check.id}: {exc}{hint}") from None

    return send


_MISSING = object()


def _at(data: Any, path: str) -> Any:
    """The value at ``path`` in a JSON answer: a key as it is, else a dotted path (``checks.dynamodb``,
    ``items.0.id``)."""
    if isinstance(data, dict) and path in data:
        return data[path]
    value = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return bool(actual == expected)


def json_problems(data: Any, expected: Mapping[str, Any], prefix: str = "") -> list[str]:
    """What in the JSON answer ``data`` differs from ``expected`` (``{path: value}``; a table as value
    compares the fields it names, wherever the answer has more)."""
    problems = []
    for path, want in expected.items():
        got = _at(data, path)
        where = prefix + path
        if got is _MISSING:
            problems.append(f"{where} is missing (expected {want!r})")
        elif isinstance(want, Mapping):
            problems += json_problems(got, want, where + ".") if isinstance(got, dict) else [
                f"{where} = {got!r}, expected a table with {dict(want)!r}"]
        elif not _same(got, want):
            problems.append(f"{where} = {got!r}, expected {want!r}")
    return problems


def _check_answer(response, check, deploy_env, what: str) -> None:  # type: ignore[no-untyped-def]
    """Status, JSON, GraphQL errors and the expected values of one answer."""
    problem = _status_problem(response, check.status)
    if problem:
        raise CheckFailure(f"{what} {check.id}: {problem}")
    graphql = getattr(check, "graphql", None)
    if not (check.expect_json or graphql is not None or getattr(check, "json", False)):
        return
    data = json_body(response, f"{what} {check.id}")
    if graphql is not None:
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors:
            shown = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                              for e in (errors if isinstance(errors, list) else [errors])[:3])
            raise CheckFailure(f"{what} {check.id}: the GraphQL answer carries errors: {shown}")
        if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
            raise CheckFailure(f"{what} {check.id}: the GraphQL answer has no data "
                               f"({str(data)[:120]!r})")
    problems = json_problems(data, _filled(check.expect_json, deploy_env))
    if problems:
        raise CheckFailure(f"{what} {check.id}: the answer differs: " + "; ".join(problems))


def _labels(check) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"path": check.label} if check.method == "GET" else {"path": check.label, "method": check.method}


def test_health(api, gate, health_check, deploy_env) -> None:  # type: ignore[no-untyped-def]
    """The health endpoint answers its expected status (and the JSON values it declares)."""
    send = _request(api, health_check, deploy_env, "health check")
    response = _sampled(api, health_check.path, deploy_env, gate, "smoke.health.latency_ms", health_check.status,
                        send=send, **_labels(health_check))
    _check_answer(response, health_check, deploy_env, "health check")


def test_api_endpoint(api, gate, endpoint_check, deploy_env) -> None:  # type: ignore[no-untyped-def]
    """An API endpoint answers its expected status (and JSON, the values it declares; a GraphQL query: data
    and no errors)."""
    what = "GraphQL endpoint" if endpoint_check.graphql is not None else "API endpoint"
    send = _request(api, endpoint_check, deploy_env, what)
    response = _sampled(api, endpoint_check.path, deploy_env, gate, "smoke.api.latency_ms", endpoint_check.status,
                        send=send, **_labels(endpoint_check))
    _check_answer(response, endpoint_check, deploy_env, what)


def test_promotion(requires, deploy_env, deploygate_run, gate) -> None:  # type: ignore[no-untyped-def]
    """The promotion precondition: the required environment's latest gate report passed within max_age."""
    from pytest_deploygate.promotion import check_promotion

    root = Path(deploygate_run.settings.config_path).parent
    gate.note(check_promotion(requires, root))


test_promotion.deploygate_requires = True  # type: ignore[attr-defined]


@pytest.fixture
def frontend_spec(deploy_env):  # type: ignore[no-untyped-def]
    if deploy_env.smoke.frontend is None:
        pytest.skip(f"environment {deploy_env.name} declares no smoke.frontend")
    return deploy_env.smoke.frontend


def test_frontend_loads(frontend, frontend_spec, deploy_env, gate) -> None:  # type: ignore[no-untyped-def]
    """The frontend page loads (200, HTML)."""
    url = page_url(deploy_env)
    response = _sampled(frontend, url, deploy_env, gate, "smoke.frontend.latency_ms", 200)
    problem = _status_problem(response, 200)
    if problem:
        raise CheckFailure(f"frontend page: {problem}")
    if "html" not in response.headers.get("Content-Type", ""):
        raise CheckFailure(f"frontend page {url}: Content-Type is "
                           f"{response.headers.get('Content-Type')!r}, expected HTML")


def test_frontend_assets(frontend, frontend_spec, deploy_env, gate) -> None:  # type: ignore[no-untyped-def]
    """Every script, stylesheet and image the frontend page references loads."""
    if not frontend_spec.assets:
        pytest.skip("smoke.frontend.assets = false")
    page = page_url(deploy_env)
    response = frontend.get(page)
    if response.status_code != 200:
        raise CheckFailure(f"frontend page {page} answered {response.status_code}; cannot check assets")
    refs = asset_refs(response.text)
    page_host = urlsplit(page).netloc
    missing = []
    for ref in refs:
        url = urljoin(page, ref)
        if urlsplit(url).netloc != page_host:
            continue  # third-party CDNs are not this deployment's to check
        asset = frontend.get(url)
        if asset.status_code != 200:
            missing.append(f"{ref} ({asset.status_code})")
    gate.record("smoke.frontend.missing_assets_count", len(missing))
    if missing:
        raise CheckFailure(f"frontend assets: {len(missing)} of {len(refs)} referenced by "
                           f"{page} do not load: {', '.join(missing)}")


def test_config_js(frontend, frontend_spec, deploy_env) -> None:  # type: ignore[no-untyped-def]
    """The frontend's config.js names this environment and points at its API and resources."""
    if not frontend_spec.config_js:
        pytest.skip("smoke.frontend.config_js is empty")
    url, found = fetch_config_js(frontend, deploy_env) or ("", {})
    wrong = []
    for key, template in frontend_spec.expect.items():
        expected = deploy_env.format(template)
        actual = found.get(key)
        if actual is None:
            wrong.append(f"{key} is missing (expected {expected!r})")
        elif actual.rstrip("/") != expected.rstrip("/"):
            wrong.append(f"{key} = {actual!r}, expected {expected!r}")
    if wrong:
        raise CheckFailure(f"config.js of {deploy_env.name} ({url}) points elsewhere: " + "; ".join(wrong))


def test_table_active(aws, deploy_env, table) -> None:  # type: ignore[no-untyped-def]
    """A declared DynamoDB table exists in this environment's account and is ACTIVE."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        desc = aws.client("dynamodb").describe_table(TableName=table)["Table"]
    except (ClientError, BotoCoreError) as exc:
        raise CheckFailure(f"DynamoDB table {table} in {deploy_env.name}: {aws.describe_error(exc)}") from None
    if desc.get("TableStatus") != "ACTIVE":
        raise CheckFailure(f"DynamoDB table {table} in {deploy_env.name} is {desc.get('TableStatus')}, "
                           "expected ACTIVE")
    account = deploy_env.aws.account_id
    arn = desc.get("TableArn", "")
    if account and f":{account}:" not in arn:
        raise CheckFailure(f"DynamoDB table {table}: {arn} is not in {deploy_env.name}'s account {account}")


def test_bucket_exists(aws, deploy_env, bucket) -> None:  # type: ignore[no-untyped-def]
    """A declared S3 bucket exists in this environment's account."""
    from botocore.exceptions import BotoCoreError, ClientError

    kwargs = {"ExpectedBucketOwner": deploy_env.aws.account_id} if deploy_env.aws.account_id else {}
    try:
        aws.client("s3").head_bucket(Bucket=bucket, **kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise CheckFailure(f"S3 bucket {bucket} in {deploy_env.name}: {aws.describe_error(exc)}") from None
