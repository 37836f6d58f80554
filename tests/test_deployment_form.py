"""The deployment form: engine is a dropdown of registered engines, parameters are described,
and a wrong project path fails the run with one clear line."""

from __future__ import annotations

import pytest

from engines.registry import names
from flows.render import render_project


def test_deployment_schema_offers_engines_and_describes_parameters():
    from prefect.utilities.callables import parameter_schema

    # What `prefect deploy` sends as the deployment's parameter_openapi_schema (the UI's form).
    schema = parameter_schema(render_project).model_dump_for_openapi()
    props = schema["properties"]
    # One enum with None first (not anyOf string|null): the UI draws one dropdown whose first
    # choice, None, is the default (each scene's own engine).
    assert props["engine"]["enum"] == [None, *names()]
    assert props["engine"]["default"] is None and "anyOf" not in props["engine"]
    assert {"animatic", "local", "runpod", "hf-space"} <= set(names())
    assert "production folder" in props["project"]["description"] and "<" not in props["project"]["description"]
    assert "project.yaml" in props["engine"]["description"]
    assert "preview" in props["scenes"]["description"]
    assert schema["required"] == ["project"]


@pytest.mark.usefixtures("prefect_harness")
def test_the_server_accepts_a_registered_engine_or_none_and_refuses_others():
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError

    render_project.to_deployment(name="form").apply()
    for engine in (None, "runpod"):
        run = run_deployment("render-project/form", parameters={"project": "projects/demo", "engine": engine},
                             timeout=0)
        assert run.parameters["engine"] == engine
    with pytest.raises(PrefectHTTPStatusError, match="Validation failed"):
        run_deployment("render-project/form", parameters={"project": "projects/demo", "engine": "nope"}, timeout=0)


@pytest.mark.usefixtures("prefect_harness")
def test_wrong_project_path_fails_the_run_with_one_clear_line(tmp_path, counting):
    state = render_project(str(tmp_path / "nope"), return_state=True)
    assert state.is_failed()
    assert f"project '{tmp_path / 'nope'}': no such folder" in state.message
    assert len(state.message.strip().splitlines()) == 1
    assert counting.calls == []


def test_takes_out_of_bounds_are_refused_by_the_flow_s_parameters():
    """takes: 1000 from the form started 2,000 clips; 0 and -1 ran as if no value was given."""
    from flows.render import render_project

    schema = render_project.parameters.model_dump()["properties"]["takes"]
    bounds = [option for option in schema.get("anyOf", [schema]) if option.get("type") == "integer"][0]
    assert (bounds["minimum"], bounds["maximum"]) == (1, 16)
