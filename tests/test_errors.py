"""The exception tree: one root, fields kept, messages built from fields, no secrets."""

from __future__ import annotations

import pytest

from sessions import errors


def test_every_project_exception_derives_from_the_root() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 10
    assert all(issubclass(cls, errors.BridgeError) for cls in classes)


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "API key was rejected"), (403, "not allowed"), (404, "no Realtime endpoint")],
)
def test_handshake_rejection_names_the_cause(status: int, words: str) -> None:
    exc = errors.HandshakeRejected(status, "api.openai.com")
    assert words in str(exc)
    assert exc.fatal


def test_profile_error_names_file_profile_and_field() -> None:
    exc = errors.ProfileError("must be one of ...", file="p.toml", profile="sales", field="voice")
    assert str(exc) == "p.toml: profile 'sales', field 'voice': must be one of ..."


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
