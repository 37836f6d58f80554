"""The engines' own settings (environment variables prefixed ``REELFLOW_``), kept with the engines
so that adding an engine never touches ``reelflow/settings.py``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EngineSettings(BaseModel):
    """Read from ``REELFLOW_<FIELD>`` variables (``reelflow.env_settings``): use :func:`engine_settings`."""

    # hf-space
    hf_space: str = Field(default="alexnasa/Ovi-ZEROGPU", description="Space id or URL for the Space engine.")
    hf_timeout: float = Field(default=900, gt=0, description="Seconds to wait for one Space job.")
    # runpod
    runpod_endpoint: str | None = Field(default=None, description="Endpoint id for the RunPod engine.")
    runpod_timeout: float = Field(default=900, gt=0, description="Seconds before a RunPod job is cancelled.")
    runpod_poll: float = Field(default=2.0, gt=0, description="Longest pause between status polls.")
    inline_limit_mb: float = Field(default=7.0, gt=0, description="Inputs above this go as presigned links, not base64.")
    # local
    local_model: str | None = Field(default=None, description="Model folder for the local engine.")
    local_params: dict = Field(default_factory=dict, description='JSON defaults, e.g. {"steps": 30, "height": 480}.')


def engine_settings() -> EngineSettings:
    """Read now (engines are made once per process and model, so this is not on a hot path)."""
    from reelflow.env_settings import from_environment

    return from_environment(EngineSettings)


def default_local_model() -> str | None:
    """The local engine's model folder when a production names none."""
    return engine_settings().local_model


# What each engine's settings add under a production's params: {variable: params}, and only
# for a setting set away from its default, so clip keys made before a setting was set stay valid.

def local_settings_params() -> dict[str, dict]:
    """REELFLOW_LOCAL_PARAMS: the local engine's defaults for every scene."""
    params = engine_settings().local_params
    return {"REELFLOW_LOCAL_PARAMS": dict(params)} if params else {}


def hf_space_settings_params() -> dict[str, dict]:
    """REELFLOW_HF_SPACE: the Space that makes the clip (as ``params.space``)."""
    space = engine_settings().hf_space
    return {"REELFLOW_HF_SPACE": {"space": space}} if space != EngineSettings.model_fields["hf_space"].default else {}


def runpod_settings_params() -> dict[str, dict]:
    """REELFLOW_RUNPOD_ENDPOINT: the endpoint that makes the clip (as ``params.endpoint``)."""
    endpoint = engine_settings().runpod_endpoint
    return {"REELFLOW_RUNPOD_ENDPOINT": {"endpoint": endpoint}} if endpoint else {}
