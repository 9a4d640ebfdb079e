"""The exception trees: a root per package, fields kept, messages built from fields, no secrets."""

from __future__ import annotations

from types import ModuleType

import pytest

from bridge import errors as bridge_errors
from resampling import errors as resampling_errors
from sessions import errors


@pytest.mark.parametrize(
    ("module", "root", "at_least"),
    [
        (errors, errors.RealtimeError, 10),
        (resampling_errors, resampling_errors.ResamplingError, 5),
        (bridge_errors, bridge_errors.BridgeError, 6),
    ],
)
def test_every_exception_of_a_package_derives_from_its_root(
    module: ModuleType, root: type[Exception], at_least: int
) -> None:
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ == module.__name__
    ]
    assert len(classes) >= at_least
    assert all(issubclass(cls, root) for cls in classes)


def test_the_bridge_groups_every_package_s_errors() -> None:
    assert issubclass(resampling_errors.InvalidParameter, bridge_errors.BAD_CONFIGURATION)
    assert issubclass(errors.ConfigError, bridge_errors.BAD_CONFIGURATION)
    assert issubclass(bridge_errors.ProfileError, bridge_errors.BAD_CONFIGURATION)
    roots = (errors.RealtimeError, resampling_errors.ResamplingError, bridge_errors.BridgeError)
    for root in roots:
        assert issubclass(root, bridge_errors.EXPECTED)


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "API key was rejected"), (403, "not allowed"), (404, "no Realtime endpoint")],
)
def test_handshake_rejection_names_the_cause(status: int, words: str) -> None:
    exc = errors.HandshakeRejected(status, "api.openai.com")
    assert words in str(exc)
    assert exc.fatal


def test_profile_error_names_file_profile_and_field() -> None:
    exc = bridge_errors.ProfileError(
        "must be one of ...", file="p.toml", profile="sales", field="voice"
    )
    assert str(exc) == "p.toml: profile 'sales', field 'voice': must be one of ..."
    exc = bridge_errors.ProfileError(
        "is not set", file="p.toml", profile="sales", tool="lookup", field="headers.X"
    )
    assert str(exc) == "p.toml: profile 'sales', tool 'lookup', field 'headers.X': is not set"
    assert str(bridge_errors.ProfileError("no profile", file="p.toml")) == "p.toml: no profile"


def test_tool_call_errors_carry_their_metric_reason() -> None:
    invalid = bridge_errors.InvalidArguments("lookup", "a: 1 is not a string", where="a", rule="t")
    assert (invalid.reason, invalid.where, invalid.rule) == ("invalid_arguments", "a", "t")
    assert str(invalid) == "tool 'lookup': a: 1 is not a string"
    assert bridge_errors.OutputTooLarge("x", "big").reason == "oversize"
    assert bridge_errors.ToolFailed("x", "HTTP 500").reason == "error"


def test_upstream_error_keeps_the_request_it_answers() -> None:
    exc = errors.UpstreamError(
        "Cancellation failed: no active response found",
        code="response_cancel_not_active",
        request_type="response.cancel",
        kind=errors.ErrorKind.BENIGN,
    )
    assert str(exc) == (
        "response_cancel_not_active: Cancellation failed: no active response found"
        " (in reply to response.cancel)"
    )
