"""Settings from REELFLOW_* variables: names in any case, JSON for structured fields, and a bad
value one InputError naming the variable (its value hidden where it may be a secret)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field, SecretStr

from engines.settings import EngineSettings
from reelflow.env_settings import from_environment
from reelflow.errors import InputError
from reelflow.settings import Settings


class Sample(BaseModel):
    limits: dict[str, int] = Field(default_factory=dict)
    hosts: list[str] | None = None
    api_key: SecretStr | None = None
    retries: int = Field(default=3, ge=0)
    secure: bool | None = None
    work_dir: Path = Path("work")


def test_values_come_from_prefixed_variables_in_any_case_and_structured_ones_from_json():
    s = from_environment(Sample, {"REELFLOW_LIMITS": '{"runpod": 2}', "reelflow_hosts": '["a", "b"]',
                                  "Reelflow_Retries": "5", "REELFLOW_SECURE": "false", "REELFLOW_WORK_DIR": "/w",
                                  "OTHER_RETRIES": "9", "REELFLOW_UNKNOWN": "ignored"})
    assert (s.limits, s.hosts, s.retries, s.secure, s.work_dir) == ({"runpod": 2}, ["a", "b"], 5, False, Path("/w"))
    assert from_environment(Sample, {}) == Sample()


def test_every_bad_value_is_named_in_one_line_and_a_secret_is_not_shown():
    with pytest.raises(InputError) as caught:
        from_environment(Sample, {"REELFLOW_LIMITS": '{"runpod": "two"}', "REELFLOW_RETRIES": "-1"})
    assert str(caught.value) == ("REELFLOW_LIMITS: Input should be a valid integer, unable to parse string as an "
                                 "integer (got 'two'); REELFLOW_RETRIES: Input should be greater than or equal to 0 "
                                 "(got '-1')")

    class Keyed(BaseModel):
        api_key_id: int = 0

    with pytest.raises(InputError) as caught:
        from_environment(Keyed, {"REELFLOW_API_KEY_ID": "hunter2"})
    assert str(caught.value).startswith("REELFLOW_API_KEY_ID: ") and "hunter2" not in str(caught.value)
    with pytest.raises(InputError, match=r"^REELFLOW_HOSTS: not valid JSON \(Expecting value\) \(got 'a,b'\)$"):
        from_environment(Sample, {"REELFLOW_HOSTS": "a,b"})


def test_the_real_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("REELFLOW_ENGINE_CONCURRENCY", '{"runpod": 6}')
    monkeypatch.setenv("REELFLOW_LOCAL_PARAMS", '{"steps": 4}')
    monkeypatch.setenv("REELFLOW_S3_SECRET_KEY", "s3cr3t")
    assert from_environment(Settings).engine_concurrency == {"runpod": 6}
    assert from_environment(Settings).s3_secret_key.get_secret_value() == "s3cr3t"
    assert from_environment(EngineSettings).local_params == {"steps": 4}


@pytest.mark.parametrize("variable, value, message", [
    ("REELFLOW_ENGINE_CONCURRENCY", '{"runpod": 0}', "greater than or equal to 1"),
    ("REELFLOW_PRICES", '{"runpod": -1}', "greater than or equal to 0"),
    ("REELFLOW_PRICES", '{"runpod": NaN}', "finite number"),
    ("REELFLOW_SPEED", '{"runpod": 0}', "greater than 0"),
])
def test_limits_prices_and_speeds_that_cannot_be_are_refused_up_front(variable, value, message):
    """Not a render whose every clip fails on them (a limit of -1 was a Semaphore's ValueError per clip)."""
    with pytest.raises(InputError, match=f"^{variable}: .*{message}"):
        from_environment(Settings, {variable: value})


@pytest.mark.parametrize("variable,value", [("REELFLOW_RUNPOD_TIMEOUT", "-1"), ("REELFLOW_INLINE_LIMIT_MB", "nan")])
def test_a_bad_engine_setting_is_bad_input_at_validate_and_before_a_render(small_project, monkeypatch, variable, value):
    """Engines read their settings when first built, inside a clip: a bad one was each scene's
    failure ("render failed", exit 1) and validate said nothing."""
    from typer.testing import CliRunner

    from reelflow.cli import app

    monkeypatch.setenv(variable, value)
    for command in ("validate", "render"):
        result = CliRunner().invoke(app, [command, str(small_project)])
        assert result.exit_code == 2, result.output
        assert result.output.strip().startswith(f"{variable}:") and len(result.output.strip().splitlines()) == 1
