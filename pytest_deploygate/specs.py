"""Moved: the configuration sections (each table's dataclass with its schema, defaults and builder) are in
:mod:`pytest_deploygate.sections`. This module only re-exports them for code not yet updated; import from
``.sections`` (and the generic machinery from ``.schema``). To be deleted once nothing imports it."""

from __future__ import annotations

from .sections import (
    DEFAULT_STATUSES,
    DEPLOYED_FIELDS,
    LATE_FIELDS,
    TEMPLATE_FIELDS,
    AllowEntry,
    CloudWatchSpec,
    CollectionSpec,
    CrudSpec,
    DistributedSpec,
    EndpointCheck,
    FrontendCheck,
    HealthCheck,
    IsolationSpec,
    LoadTask,
    PerformanceSpec,
    SecuritySpec,
    SmokeSpec,
    WebhookSpec,
)

__all__ = ["DEFAULT_STATUSES", "DEPLOYED_FIELDS", "LATE_FIELDS", "TEMPLATE_FIELDS", "AllowEntry", "CloudWatchSpec",
           "CollectionSpec", "CrudSpec", "DistributedSpec", "EndpointCheck", "FrontendCheck", "HealthCheck",
           "IsolationSpec", "LoadTask", "PerformanceSpec", "SecuritySpec", "SmokeSpec", "WebhookSpec"]
