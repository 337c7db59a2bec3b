"""A bundle in OPA's status message, field for field as OPA's ``plugins/bundle`` Status gives it."""

from __future__ import annotations

from pyagent.agent.plugins.bundledir import BundleStatus

AT = "2023-03-16T09:30:00Z"


def test_an_active_bundle_is_a_snapshot_with_its_size_and_no_http_code() -> None:
    status = BundleStatus(
        "pyagent",
        etag='"e1"',
        active_revision="r1",
        active_serial=1,
        last_request=AT,
        last_successful_request=AT,
        last_successful_download=AT,
        last_successful_activation=AT,
        http_code=200,
        size=146_840,
    )
    assert status.opa_json() == {
        "name": "pyagent",
        "active_revision": "r1",
        "last_request": AT,
        "last_successful_request": AT,
        "last_successful_download": AT,
        "last_successful_activation": AT,
        "type": "snapshot",
        "size": 146_840,
    }


def test_an_http_error_gives_its_code_other_errors_none() -> None:
    failing = BundleStatus("pyagent", last_request=AT, http_code=503, code="bundle_error", message="HTTP 503")
    assert failing.opa_json() == {
        "name": "pyagent",
        "last_request": AT,
        "code": "bundle_error",
        "message": "HTTP 503",
        "errors": ["HTTP 503"],
        "http_code": 503,
    }
    refused = BundleStatus("pyagent", last_request=AT, http_code=200, code="bundle_error", message="bad sig")
    assert "http_code" not in refused.opa_json()
