"""Smoke suite: the deployment is up and wired to the right environment.

Driven by the environment's ``smoke`` settings: health endpoints, API endpoints, the frontend page and
every asset it references, ``config.js`` values, and the declared DynamoDB tables and S3 buckets.
"""

from __future__ import annotations

import statistics
from urllib.parse import urljoin, urlsplit

import pytest

from pytest_deploygate import current_environment
from pytest_deploygate.frontend import asset_refs, fetch_config_js, page_url
from pytest_deploygate.http import CheckFailure, json_body

pytestmark = [pytest.mark.gate, pytest.mark.smoke]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    env = current_environment(metafunc.config)
    if env is None:
        return
    params = {
        "health_check": [(h, h.id) for h in env.smoke.health],
        "endpoint_check": [(e, e.id) for e in env.smoke.endpoints],
        "table": [(t, t) for t in env.tables],
        "bucket": [(b, b) for b in env.buckets],
    }
    for name, values in params.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, [v for v, _ in values], ids=[i for _, i in values])


def _status_problem(response, expected: int) -> str | None:  # type: ignore[no-untyped-def]
    if response.status_code == expected:
        return None
    return (f"{response.request.method} {response.url} answered {response.status_code}, "
            f"expected {expected}")


def _sampled(client, url: str, deploy_env, gate, metric: str, expected: int, **labels: str):  # type: ignore[no-untyped-def]
    """``smoke.samples`` requests to ``url``; their median latency is recorded (one slow request, e.g. the
    first on a cold connection or a busy machine, is not a verdict) with every sample. Returns the first
    answer with an unexpected status, else the last answer."""
    responses = []
    for _ in range(deploy_env.smoke.samples):
        response = client.get(url)
        responses.append(response)
        if response.status_code != expected:
            break  # a wrong answer is the finding: no more requests needed to judge it
    times = [r.elapsed_ms for r in responses]
    gate.record(metric, statistics.median(times), samples=len(times), values=times, **labels)
    return responses[-1]


def test_health(api, gate, health_check, deploy_env) -> None:  # type: ignore[no-untyped-def]
    """The health endpoint answers its expected status."""
    response = _sampled(api, health_check.path, deploy_env, gate, "smoke.health.latency_ms", health_check.status,
                        path=health_check.id)
    problem = _status_problem(response, health_check.status)
    if problem:
        raise CheckFailure(f"health check {health_check.id}: {problem}")


def test_api_endpoint(api, gate, endpoint_check, deploy_env) -> None:  # type: ignore[no-untyped-def]
    """An API endpoint answers its expected status (and JSON, when declared)."""
    response = _sampled(api, endpoint_check.path, deploy_env, gate, "smoke.api.latency_ms", endpoint_check.status,
                        path=endpoint_check.id)
    problem = _status_problem(response, endpoint_check.status)
    if problem:
        raise CheckFailure(f"API endpoint {endpoint_check.id}: {problem}")
    if endpoint_check.json:
        json_body(response, f"API endpoint {endpoint_check.id}")


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
