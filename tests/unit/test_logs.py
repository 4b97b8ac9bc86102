"""Log lines never carry a password or a secret parameter, whatever field or text holds it."""

from __future__ import annotations

from jobserver.logs import redact_secrets


def test_passwords_and_secret_parameters_are_redacted_in_every_field() -> None:
    event = {
        "event": "store_failed",
        "store": "postgresql://jobs:s3cret@db:5432/jobserver",
        "exception": "OperationalError: connection to postgresql://u:p%40ss@db/x?password=hunter2&x=1 failed",
        "callback": "https://hooks.example/done?token=abc&job=1",
        "count": 3,
        "plain": "nothing to hide: a=b",
    }
    assert redact_secrets(None, "info", dict(event)) == {
        "event": "store_failed",
        "store": "postgresql://jobs:***@db:5432/jobserver",
        "exception": "OperationalError: connection to postgresql://u:***@db/x?password=***&x=1 failed",
        "callback": "https://hooks.example/done?token=***&job=1",
        "count": 3,
        "plain": "nothing to hide: a=b",
    }
