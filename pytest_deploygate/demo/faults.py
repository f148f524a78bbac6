"""Fault switches of the reference deployment: ``ENV:FAULT`` lists from ``DEPLOYGATE_DEMO_FAULTS``
or ``deploygate demo up --fault``. Each fault names what it breaks, so every gate check can be shown
to fail for the right reason."""

from __future__ import annotations

from collections.abc import Iterable

FAULTS_ENV = "DEPLOYGATE_DEMO_FAULTS"

#: fault name -> what it does (shown by ``deploygate demo faults`` and in errors)
FAULTS: dict[str, str] = {
    "health-down": "the health endpoint answers 503",
    "slow": "every API answer is delayed by 3.5 s (past the default 3 s latency fail level)",
    "errors": "every second /api answer is a 500",
    "wrong-config": "config.js names another environment's API endpoint and tables",
    "frontend-broken": "index.html references an asset that is not deployed",
    "leak": "the stories table is shared with the next environment (dev->staging->prod): writes show up there",
    "cors-wildcard": "the API answers Access-Control-Allow-Origin: * to any origin",
    "tail-latency": "one answer in ten is delayed by 3.5 s: the average stays low, p95 does not",
    "flaky": "one /api answer in 33 is a 500 (3 %: between the 1 % warn and 5 % fail levels)",
    "insecure-code": "the deployed service code has a bandit HIGH finding (subprocess with shell=True)",
    "vulnerable-deps": "the service's requirements pin requests 2.19.0 and jinja2 2.10 (known advisories)",
    "no-security-headers": "the API sends no X-Content-Type-Options / X-Frame-Options",
    "cors-reflect": "the API reflects any Origin, with Access-Control-Allow-Credentials: true",
    "open-auth": "the protected /api/admin/export answers 200 to anonymous callers",
    "auth-broken": "the protected /api/admin/export refuses every caller, the admin token too (403)",
    "stack-trace": "500 answers carry a Python traceback",
    "secret-in-config": "config.js carries an AWS-style access key and secret key",
    # the serverless resources (issue 12; demo/serverless.py)
    "dlq-not-empty": "one message waits in the dead-letter queue {service}-{stage}-jobs-dlq",
    "alarm-firing": "the CloudWatch alarm {service}-{stage}-api-errors is in ALARM",
    "log-level-wrong": "the Lambda function's LOG_LEVEL is DEBUG (INFO on dev, whose level is DEBUG)",
    "foreign-token-accepted": "the protected /api/me also accepts tokens from dev's user pool "
                              "(dev: from the next environment's)",
    "pitr-off": "point-in-time recovery is off on the stories table",
    "function-missing": "the Lambda function {service}-{stage}-api does not exist",
    "slow-endpoint": "GET /api/acceptance-tests (that path only) answers 0.8 s later",
    # the smoke extensions (issue 12): a health answer's body, a GraphQL answer's errors
    "health-degraded": "/health answers 200 with status \"degraded\" and checks.dynamodb \"timeout\"",
    "graphql-errors": "POST /graphql answers 200 with errors (a resolver fails) and null data",
}

#: how long the ``slow`` fault delays every answer (and ``tail-latency`` one in ten)
SLOW_DELAY_S = 3.5
TAIL_EVERY = 10
FLAKY_EVERY = 33
#: the one path the ``slow-endpoint`` fault delays, and by how much (far above a label threshold of a few
#: hundred ms, far below the 3 s name-wide default)
SLOW_ENDPOINT_PATH = "/api/acceptance-tests"
SLOW_ENDPOINT_DELAY_S = 0.8


class FaultError(ValueError):
    pass


def parse_faults(spec: str | Iterable[str], environments: Iterable[str]) -> dict[str, frozenset[str]]:
    """``"staging:slow,prod:health-down"`` (or ``"slow"`` / ``"*:slow"`` for every environment)
    -> ``{"staging": {"slow"}, "prod": {"health-down"}, "dev": set()}``."""
    envs = list(environments)
    items: list[str] = []
    for part in ([spec] if isinstance(spec, str) else list(spec)):
        items.extend(p.strip() for p in part.split(",") if p.strip())
    result: dict[str, set[str]] = {e: set() for e in envs}
    for item in items:
        env, _, fault = item.rpartition(":")
        env = env.strip() or "*"
        fault = fault.strip()
        if fault not in FAULTS:
            raise FaultError(f"unknown fault {fault!r} in {item!r} (known: {', '.join(FAULTS)})")
        if env == "*":
            for e in envs:
                result[e].add(fault)
        elif env in result:
            result[env].add(fault)
        else:
            raise FaultError(f"unknown environment {env!r} in fault {item!r} (known: {', '.join(envs)})")
    return {e: frozenset(f) for e, f in result.items()}


def format_faults(faults: dict[str, frozenset[str]]) -> str:
    return ",".join(f"{env}:{f}" for env, fs in sorted(faults.items()) for f in sorted(fs))
