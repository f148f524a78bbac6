"""The reference service: one routed handler in API Gateway proxy-event form (the seeds' "single
Lambda with internal routing"), storing ``stories`` and ``acceptance-tests`` in DynamoDB through boto3.

Configured like a Lambda, through environment variables: ``STAGE``, ``SERVICE``, ``TABLE_<COLLECTION>``,
``AWS_ENDPOINT_URL``, ``ALLOWED_ORIGIN`` and ``DEPLOYGATE_FAULTS`` (this environment's faults only).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

from .faults import FLAKY_EVERY, SLOW_DELAY_S, SLOW_ENDPOINT_DELAY_S, SLOW_ENDPOINT_PATH, TAIL_EVERY

COLLECTIONS = ("stories", "acceptance-tests")
#: the route that takes a Cognito token from this environment's user pool
PROTECTED_PATH = "/api/me"
#: the GraphQL route (seed 004's AppSync API) and its schema
GRAPHQL_PATH = "/graphql"
GRAPHQL_SDL = """
type Query { stage: String!  health: Health!  stories(limit: Int): [Story!]! }
type Health { status: String!  stage: String! }
type Story { id: ID!  title: String }
"""


def _var(collection: str) -> str:
    return "TABLE_" + collection.upper().replace("-", "_")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


def boto_session(region: str) -> Any:
    """The service's one boto3 session (its clients are shared by the serving threads)."""
    import boto3

    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)


_preloaded: list[Any] = []


def preload(region: str = "us-east-1") -> None:
    """Import boto3 and load the DynamoDB model into a session the next ``Service`` (of that region) uses: the
    fork server does this once, before it forks the APIs. Creating a client opens no connection."""
    from boto3.dynamodb.types import TypeDeserializer  # noqa: F401  (imported now, not on the first request)

    session = boto_session(region)
    session.client("dynamodb", endpoint_url="http://127.0.0.1:9")
    _preloaded[:] = [session]


class _Table:
    """The few DynamoDB table operations the service needs, on a shared low-level client."""

    def __init__(self, client: Any, name: str) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.client = client
        self.name = name
        self._ser = TypeSerializer()
        self._des = TypeDeserializer()

    def _to(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in item.items()}

    def _from(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {k: self._des.deserialize(v) for k, v in raw.items()}

    def load(self) -> None:
        self.client.describe_table(TableName=self.name)

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        if "ExpressionAttributeValues" in kwargs:
            kwargs["ExpressionAttributeValues"] = self._to(kwargs["ExpressionAttributeValues"])
        page = self.client.scan(TableName=self.name, **kwargs)
        page["Items"] = [self._from(i) for i in page.get("Items", [])]
        return dict(page)

    def get_item(self, Key: dict[str, Any]) -> dict[str, Any]:
        raw = self.client.get_item(TableName=self.name, Key=self._to(Key), ConsistentRead=True).get("Item")
        return {"Item": self._from(raw)} if raw else {}

    def put_item(self, Item: dict[str, Any]) -> None:
        self.client.put_item(TableName=self.name, Item=self._to(Item))

    def delete_item(self, Key: dict[str, Any]) -> None:
        self.client.delete_item(TableName=self.name, Key=self._to(Key))


class CognitoAuth:
    """The protected route's token check, as an API Gateway Cognito authorizer does it: the token's issuer is a
    trusted pool (``USER_POOL_ID``: this environment's; ``TRUSTED_USER_POOLS``, a JSON list, only when the
    deploy trusts more), its audience that pool's app client (``aud`` of an ID token, ``client_id`` of an
    access token), its signature a key of that pool's JWKS, and it has not expired. moto signs every pool's
    tokens with one key: the issuer and audience are what keep a peer's token out."""

    def __init__(self, env: dict[str, str]) -> None:
        region = env.get("AWS_REGION", "us-east-1")
        pools: list[dict[str, str]] = []
        if env.get("USER_POOL_ID"):
            pool_id = env["USER_POOL_ID"]
            pools.append({"pool_id": pool_id, "client_id": env.get("USER_POOL_CLIENT_ID", ""),
                          "jwks_url": f"{env.get('AWS_ENDPOINT_URL', '')}/{pool_id}/.well-known/jwks.json"})
        pools += json.loads(env.get("TRUSTED_USER_POOLS") or "[]")
        self.pools = {f"https://cognito-idp.{region}.amazonaws.com/{p['pool_id']}": p for p in pools}
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def keys(self, issuer: str) -> Any:
        """The pool's signing keys (fetched once from its JWKS URL)."""
        with self._lock:
            if issuer not in self._keys:
                import requests
                from joserfc.jwk import KeySet

                answer = requests.get(self.pools[issuer]["jwks_url"], timeout=5)
                answer.raise_for_status()
                self._keys[issuer] = KeySet.import_key_set(answer.json())
            return self._keys[issuer]

    def warm(self) -> None:
        """Import the JOSE library and fetch each pool's keys now, not on the first token (what fails here is
        tried again then, and answered 503)."""
        with contextlib.suppress(Exception):
            from joserfc import jwt  # noqa: F401
        for issuer in self.pools:
            with contextlib.suppress(Exception):
                self.keys(issuer)

    def check(self, token: str) -> dict[str, Any] | None:
        """The token's claims if it is valid here, else None (``OSError`` / ``requests`` errors: no keys)."""
        import base64

        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            payload = token.split(".")[1]
            claimed = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return None
        issuer = claimed.get("iss") if isinstance(claimed, dict) else None
        pool = self.pools.get(issuer) if isinstance(issuer, str) else None
        if pool is None or not isinstance(issuer, str):
            return None
        keys = self.keys(issuer)
        try:
            claims = dict(jwt.decode(token, keys, algorithms=["RS256"]).claims)
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": issuer}, exp={"essential": True},
                                  token_use={"essential": True, "values": ["id", "access"]}).validate(claims)
        except (JoseError, ValueError):
            return None
        audience = claims.get("aud") if claims["token_use"] == "id" else claims.get("client_id")
        return claims if pool["client_id"] and audience == pool["client_id"] else None


class Service:
    """The handler plus the state a Lambda container keeps between invocations."""

    def __init__(self, environ: dict[str, str] | None = None, session: Any = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self.stage = env.get("STAGE", "dev")
        self.service = env.get("SERVICE", "aipm-backend")
        self.allowed_origin = env.get("ALLOWED_ORIGIN", "*")
        self.faults = frozenset(f for f in env.get("DEPLOYGATE_FAULTS", "").split(",") if f)
        self.tables = {c: env.get(_var(c), f"{self.service}-{self.stage}-{c}") for c in COLLECTIONS}
        self.endpoint_url = env.get("AWS_ENDPOINT_URL")
        # Where each table lives: this environment's account, unless the deploy wired it elsewhere.
        self.endpoints = {c: env.get(_var(c) + "_ENDPOINT", self.endpoint_url) for c in COLLECTIONS}
        self.region = env.get("AWS_REGION", "us-east-1")
        self.admin_token = env.get("ADMIN_TOKEN", "")
        self.auth = CognitoAuth(env)
        self._api_calls = itertools.count()
        self._all_calls = itertools.count()
        self._clients: dict[str | None, Any] = {}
        session = session if session is not None else next(iter(_preloaded), None)
        self._session = session if session is not None and session.region_name == self.region else None
        self.writes = 0
        self.requests = 0
        self._count_lock = threading.Lock()
        self._last_sweep = time.monotonic()
        self._graphql_schema: Any = None

    # One boto3 client per endpoint, shared by the serving threads (clients are thread-safe; resources
    # are not, and building one per connection thread costs more than the request).
    def table(self, collection: str) -> _Table:
        endpoint = self.endpoints[collection]
        with self._count_lock:
            client = self._clients.get(endpoint)
            if client is None:
                if self._session is None:
                    self._session = boto_session(self.region)
                client = self._clients[endpoint] = self._session.client("dynamodb", endpoint_url=endpoint)
        return _Table(client, self.tables[collection])

    def warm_clients(self) -> None:
        """Build every boto3 client and make a first call on each before the API says it is ready: a cold
        client (loading service models, first connection) costs 100 ms to 1 s, and the first check must not
        pay it. The tables may not exist yet: any answer warms the client."""
        for collection in COLLECTIONS:
            try:
                self.table(collection).client.list_tables(Limit=1)
            except Exception:
                pass
        self.auth.warm()

    def warm(self) -> dict[str, Any]:
        """Once provisioned (``GET /_demo/warm``, called by the launcher before it hands out addresses): the
        health path and a first TTL sweep, so neither lands cold on the gate's first checks."""
        status, body = self.health()
        removed = self.expire_ttl()
        return {"health": status, "checks": body.get("checks", {}), "expired": removed}

    def expire_ttl(self, attribute: str = "ttl") -> int:
        """Delete items whose TTL has passed, as DynamoDB does (the emulator does not)."""
        try:
            return self._expire_ttl(attribute)
        finally:
            self._last_sweep = time.monotonic()

    def _expire_ttl(self, attribute: str) -> int:
        now = int(time.time())
        removed = 0
        for collection in COLLECTIONS:
            table = self.table(collection)
            kwargs: dict[str, Any] = {"FilterExpression": "#t < :now", "ExpressionAttributeNames": {"#t": attribute},
                                      "ExpressionAttributeValues": {":now": now}, "ProjectionExpression": "id"}
            while True:
                page = table.scan(**kwargs)
                for item in page.get("Items", []):
                    table.delete_item(Key={"id": item["id"]})
                    removed += 1
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return removed

    def start_ttl_sweeper(self, interval_s: float) -> None:
        def sweep() -> None:
            while True:
                # counted from the last sweep (the launcher's warm-up sweeps once, just before the checks)
                wait = self._last_sweep + interval_s - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                    continue
                try:
                    self.expire_ttl()
                except Exception:  # the emulator may be gone at shutdown; keep serving
                    self._last_sweep = time.monotonic()

        threading.Thread(target=sweep, name="ttl-sweeper", daemon=True).start()

    # ------------------------------------------------------------------------------------------
    def handler(self, event: dict[str, Any], context: object = None) -> dict[str, Any]:
        method = event.get("httpMethod", "GET").upper()
        path = "/" + event.get("path", "/").strip("/")
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        if "slow" in self.faults:
            time.sleep(SLOW_DELAY_S)
        elif "tail-latency" in self.faults and next(self._all_calls) % TAIL_EVERY == TAIL_EVERY - 1:
            time.sleep(SLOW_DELAY_S)
        if "slow-endpoint" in self.faults and method == "GET" and path == SLOW_ENDPOINT_PATH:
            time.sleep(SLOW_ENDPOINT_DELAY_S)
        try:
            status, body = self.route(method, path, event)
        except Exception:  # a Lambda answers 500 rather than dying
            status, body = 500, {"message": "internal error"}
            if "stack-trace" in self.faults:
                import traceback

                body["trace"] = traceback.format_exc()
        return self.respond(status, body, headers.get("origin"))

    def respond(self, status: int, body: Any, origin: str | None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if "no-security-headers" not in self.faults:
            headers.update({"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"})
        if "cors-reflect" in self.faults and origin:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        elif self.allowed_origin == "*":
            headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin == self.allowed_origin:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = "Origin"
        headers["Access-Control-Allow-Methods"] = "GET,POST,PUT,PATCH,DELETE,OPTIONS"
        headers["Access-Control-Allow-Headers"] = "Content-Type,Authorization"
        return {"statusCode": status, "headers": headers,
                "body": "" if body is None else json.dumps(body), "isBase64Encoded": False}

    def route(self, method: str, path: str, event: dict[str, Any]) -> tuple[int, Any]:
        if not path.startswith("/_demo/"):  # the stats endpoint does not count itself
            with self._count_lock:
                self.requests += 1
                if method in ("POST", "PUT", "PATCH", "DELETE") and path.startswith("/api/"):
                    self.writes += 1
        if method == "OPTIONS":
            return 204, None
        if path == "/_demo/stats" and method == "GET":
            return 200, {"stage": self.stage, "requests": self.requests, "writes": self.writes}
        if path == "/_demo/warm" and method == "GET":
            return 200, self.warm()
        if path == "/health" and method in ("GET", "POST"):  # POST /health: the 002 guide's health check
            return self.health()
        if path == GRAPHQL_PATH and method == "POST":
            return self.graphql(event.get("body"))
        if path in ("/", "/api") and method == "GET":
            return 200, {"service": self.service, "stage": self.stage,
                         "collections": list(COLLECTIONS)}
        if path == "/api/admin/export" and method == "GET":
            return self.admin_export(event)
        if path == PROTECTED_PATH and method == "GET":
            return self.me(event)
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api" and parts[1] in COLLECTIONS and len(parts) <= 3:
            if "errors" in self.faults and next(self._api_calls) % 2 == 0:
                # raised, not returned: the 500 is a crash, with a traceback under the stack-trace fault
                raise RuntimeError("injected failure (fault: errors)")
            if "flaky" in self.faults and next(self._api_calls) % FLAKY_EVERY == FLAKY_EVERY - 1:
                return 500, {"message": "internal error"}
            collection = parts[1]
            item_id = parts[2] if len(parts) == 3 else None
            return self.collection(method, collection, item_id, event.get("body"),
                                   event.get("queryStringParameters") or {})
        return 404, {"message": f"no route for {method} {path}"}

    def health(self) -> tuple[int, Any]:
        if "health-down" in self.faults:
            return 503, {"status": "unavailable", "stage": self.stage}
        try:
            self.table("stories").load()
            dynamo = "ok"
        except Exception as exc:
            return 503, {"status": "unavailable", "stage": self.stage,
                         "checks": {"dynamodb": type(exc).__name__}}
        if "health-degraded" in self.faults:
            return 200, {"status": "degraded", "stage": self.stage, "checks": {"dynamodb": "timeout"}}
        return 200, {"status": "ok", "stage": self.stage, "checks": {"dynamodb": dynamo}}

    def graphql(self, raw_body: str | None) -> tuple[int, Any]:
        """A tiny GraphQL API (the AppSync stack's shape, 004), executed by graphql-core: queries ``stage``,
        ``health { status stage }`` and ``stories(limit) { id title }``; no mutations."""
        from graphql import build_schema, graphql_sync

        request = self._body(raw_body)
        if not isinstance(request, dict) or not isinstance(request.get("query"), str):
            return 400, {"errors": [{"message": "expected a JSON body with a query"}]}
        if self._graphql_schema is None:
            self._graphql_schema = build_schema(GRAPHQL_SDL)

        def health(_info: Any) -> dict[str, Any]:  # a root value's callable gets (info, **args)
            if "graphql-errors" in self.faults:
                raise RuntimeError("health resolver failed (fault: graphql-errors)")
            status, body = self.health()
            return {"status": body.get("status", str(status)), "stage": self.stage}

        def stories(_info: Any, limit: int = 0) -> list[dict[str, Any]]:
            items = [_plain(i) for i in self.table("stories").scan().get("Items", [])]
            return items[:limit] if limit > 0 else items

        root = {"stage": self.stage, "health": health, "stories": stories}
        result = graphql_sync(self._graphql_schema, request["query"], root_value=root,
                              variable_values=request.get("variables") or None,
                              operation_name=request.get("operationName"))
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [{"message": e.message} for e in result.errors]
        return 200, answer

    def admin_export(self, event: dict[str, Any]) -> tuple[int, Any]:
        """A protected endpoint: only callers with the admin token."""
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        supplied = headers.get("authorization", "")
        if "open-auth" not in self.faults:
            if not supplied:
                return 401, {"message": "authentication required"}
            if not self.admin_token or supplied != f"Bearer {self.admin_token}" or "auth-broken" in self.faults:
                return 403, {"message": "forbidden"}
        counts = {c: self.table(c).scan(Select="COUNT").get("Count", 0) for c in COLLECTIONS}
        return 200, {"stage": self.stage, "exported": counts}

    def me(self, event: dict[str, Any]) -> tuple[int, Any]:
        """Who the caller is, from a Cognito token of this environment's user pool."""
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, {"message": "authentication required"}
        if not self.auth.pools:
            return 503, {"message": "no user pool configured"}
        try:
            claims = self.auth.check(token.strip())
        except Exception:  # the pool's keys could not be fetched (or read): the token could not be checked
            return 503, {"message": "token keys unavailable"}
        if claims is None:
            return 401, {"message": "invalid token"}
        return 200, {"stage": self.stage, "username": claims.get("cognito:username") or claims.get("username"),
                     "sub": claims.get("sub"), "token_use": claims.get("token_use"),
                     "pool": str(claims.get("iss", "")).rsplit("/", 1)[-1]}

    def collection(self, method: str, collection: str, item_id: str | None,
                   raw_body: str | None, query: dict[str, str] | None = None) -> tuple[int, Any]:
        table = self.table(collection)
        if item_id is None:
            if method == "GET":
                limit = int((query or {}).get("limit", "0"))  # a malformed limit is a 500, as in the wild
                items: list[Any] = []
                kwargs: dict[str, Any] = {}
                while True:
                    page = table.scan(**kwargs)
                    items.extend(page.get("Items", []))
                    if "LastEvaluatedKey" not in page:
                        break
                    kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
                return 200, [_plain(i) for i in (items[:limit] if limit > 0 else items)]
            if method == "POST":
                body = self._body(raw_body)
                if not isinstance(body, dict):
                    return 400, {"message": "body must be a JSON object"}
                item = dict(body)
                item["id"] = str(item.get("id") or uuid.uuid4())
                item.setdefault("createdAt", int(time.time()))
                table.put_item(Item=_dynamo(item))
                return 201, item
            return 405, {"message": f"{method} not allowed on /api/{collection}"}
        found = table.get_item(Key={"id": item_id}).get("Item")
        if method == "GET":
            return (200, _plain(found)) if found else (404, {"message": "not found"})
        if method in ("PUT", "PATCH"):
            if not found:
                return 404, {"message": "not found"}
            body = self._body(raw_body)
            if not isinstance(body, dict):
                return 400, {"message": "body must be a JSON object"}
            item = {**_plain(found), **body, "id": item_id}
            table.put_item(Item=_dynamo(item))
            return 200, item
        if method == "DELETE":
            if not found:
                return 404, {"message": "not found"}
            table.delete_item(Key={"id": item_id})
            return 204, None
        return 405, {"message": f"{method} not allowed on /api/{collection}/{{id}}"}

    @staticmethod
    def _body(raw: str | None) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None
