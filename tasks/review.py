"""The review gate: once every take has landed, a person picks a take per scene or asks for a redo.

In the Prefect UI the flow pauses with ``pause_flow_run(wait_for_input=...)``: the form has one
group per scene (``take``: a choice among the takes that exist, ``redo``: make a new take) and
``again`` (show the form again once the redo takes are made; off: the redo take is picked and
the flow goes on to the cut). The same answer can be sent through the API::

    resume_flow_run(flow_run_id, run_input={"scenes": {"s1": {"take": 2, "redo": False}}, "again": False})

In a terminal, ``reelflow render --review`` installs a reviewer (:func:`reviewer`) that asks the
same questions on stdin instead of pausing. Nobody answering (``REELFLOW_REVIEW_TIMEOUT``
seconds, or stdin closed) is decided by ``REELFLOW_REVIEW_ON_TIMEOUT``: ``proceed`` with the
current picks, or ``fail`` the render.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from tasks.step import in_prefect_run, run_logger, step

from reelflow.errors import InputError, RenderError
from reelflow.settings import get_settings
from tasks.models import ClipRef, TakeRef


class ReviewTimeout(RenderError):
    """Nobody answered the review in time and REELFLOW_REVIEW_ON_TIMEOUT=fail."""


class ReviewCancelled(RenderError):
    """The run was cancelled (in the UI or the API) while its review waited for an answer."""


class ReviewUnanswerable(InputError):
    """A review was asked for where neither a terminal nor a Prefect run can answer it."""


class SceneReview(BaseModel):
    """What a reviewer sees of one scene."""

    scene_id: str
    speech: str | None = None
    action: str | None = None
    picked: int
    takes: list[TakeRef]


class Review(BaseModel):
    """A reviewer's answer: the take per scene, the scenes to redo, and whether to ask again."""

    picks: dict[str, int] = Field(default_factory=dict)
    redo: list[str] = Field(default_factory=list)
    again: bool = False


class SceneChoice(BaseModel):
    take: int = Field(ge=1, description="The take the cut uses.")
    redo: bool = Field(False, description="Make a new take of this scene (one engine call) and use it.")


def review_form(scenes: list[SceneReview]):
    """The Prefect UI form: a ``RunInput`` with one group per scene (``take`` among those that
    exist, ``redo``) and ``again``. The production's text is inert markdown in it."""
    from prefect.input import RunInput

    from tasks.publish import md

    fields = {}
    for s in scenes:
        numbers = tuple(t.take for t in s.takes) or (s.picked,)
        choice = create_model(f"Scene_{len(fields)}", __base__=SceneChoice,
                              take=(Literal[numbers], Field(s.picked, description="The take the cut uses.")))
        about = " — ".join(md(x) for x in (s.action, f"“{s.speech}”" if s.speech else None) if x)
        fields[s.scene_id] = (choice, Field(choice(take=s.picked), title=s.scene_id, description=about or None))
    scenes_model = create_model("Scenes", __config__=ConfigDict(extra="forbid"), **fields)   # an unknown scene is refused
    form = create_model("ReviewInput", __base__=RunInput,
                        scenes=(scenes_model, Field(scenes_model(), description="Per scene: the take to use, or redo.")),
                        again=(bool, Field(False, description="After making the redo takes, show this form "
                                                              "again (off: use them).")))
    form._description = review_markdown(scenes)
    return form


def review_markdown(scenes: list[SceneReview], link: Callable[[str], str | None] = lambda key: None) -> str:
    """The review's table; the production's text in it is inert (no link, image or HTML of its own)."""
    from tasks.publish import md

    lines = ["# Review the takes", "",
             "Pick a take per scene, or tick **redo** for a new one; then **Resume**.", "",
             "| scene | speech | picked | takes |", "| --- | --- | --- | --- |"]
    for s in scenes:
        takes = []
        for t in s.takes:
            label = f"take {t.take} (seed {t.seed}, {t.engine or 'footage'})"
            url = link(t.key)
            takes.append(f"[{label}]({url})" if url else label)
        lines.append(f"| {md(s.scene_id)} | {md(s.speech)} | {s.picked} | {'<br>'.join(takes)} |")
    return "\n".join(lines)


def answer_of(scenes: list[SceneReview], form_answer: BaseModel) -> Review:
    """Turn the form's answer into a Review, keeping only takes that exist."""
    picks, redo = {}, []
    given = form_answer.scenes.model_dump() if hasattr(form_answer, "scenes") else {}
    for s in scenes:
        choice = given.get(s.scene_id) or {}
        take = choice.get("take", s.picked)
        if take in {t.take for t in s.takes}:
            picks[s.scene_id] = take
        if choice.get("redo"):
            redo.append(s.scene_id)
    return Review(picks=picks, redo=redo, again=bool(getattr(form_answer, "again", False)))


# -- who answers ------------------------------------------------------------------------------

Reviewer = Callable[[list[SceneReview]], Review | None]


@contextlib.contextmanager
def reviewer(answer: Reviewer) -> Iterator[None]:
    """Answer reviews in this process with ``answer`` (the terminal) instead of pausing the run.

    ``answer`` returns None when nobody can answer (stdin closed): the timeout rule applies.
    """
    _REVIEWERS.append(answer)
    try:
        yield
    finally:
        _REVIEWERS.remove(answer)


_REVIEWERS: list[Reviewer] = []


def ask(scenes: list[SceneReview], slug: str) -> Review:
    """Ask for a review: the terminal's reviewer if one is installed, else pause the flow run."""
    settings = get_settings()
    logger = run_logger()
    if not _REVIEWERS and not in_prefect_run():
        raise ReviewUnanswerable(f"review of {slug}: nobody can answer it here; use `reelflow render --review` "
                                 "in a terminal, or run the render through Prefect (the UI's form)")
    answer = _REVIEWERS[-1](scenes) if _REVIEWERS else _pause_for(scenes, settings.review_timeout)
    if answer is not None:
        return answer
    if settings.review_on_timeout == "fail":
        raise ReviewTimeout(f"review of {slug}: nobody answered (REELFLOW_REVIEW_ON_TIMEOUT=fail); "
                            "render again and answer the review, or set REELFLOW_REVIEW_ON_TIMEOUT=proceed")
    logger.warning("review of %s: nobody answered; going on with the current picks", slug)
    return Review(picks={s.scene_id: s.picked for s in scenes})


def _pause_for(scenes: list[SceneReview], timeout: float) -> Review | None:
    """Pause the flow run until the form is answered; None when nobody answers in ``timeout``
    seconds (the run is set running again). A run cancelled while it waited stays cancelled:
    :class:`ReviewCancelled`.

    This is Prefect's ``pause_flow_run(wait_for_input=...)`` (the same Paused state, form and
    input keys, so the UI shows the same form), with its own wait: Prefect's waits for Running
    only, so a run cancelled from the UI while paused (and not served by a worker that kills
    it) stayed Cancelling until the timeout (a day by default), and one the server failed when
    its pause expired ended Cancelled instead of following REELFLOW_REVIEW_ON_TIMEOUT."""
    import time
    from uuid import uuid4

    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.input import keyset_from_paused_state
    from prefect.input.run_input import run_input_subclass_from_type
    from prefect.states import Paused, Running
    from prefect.utilities.engine import propose_state_sync

    run = FlowRunContext.get().flow_run
    form = run_input_subclass_from_type(review_form(scenes))
    paused = Paused(timeout_seconds=max(1, int(timeout)), reschedule=False, pause_key=f"review-{uuid4().hex[:12]}")
    keyset = keyset_from_paused_state(paused)
    paused.state_details.run_input_keyset = keyset
    poll = max(0.2, float(get_settings().review_poll))
    with get_client(sync_client=True) as client:
        state = propose_state_sync(client, paused, flow_run_id=run.id)
        if not state.is_paused():
            raise ReviewCancelled(f"review of {run.name}: the run could not pause ({state.name})")
        form.save(keyset, flow_run_id=run.id)
        run_logger().info("review of %s: paused for the form (Resume in the UI, or resume_flow_run)", run.name)
        deadline = time.monotonic() + max(1, int(timeout))
        while True:
            time.sleep(max(0.0, min(poll, deadline - time.monotonic())))
            state = client.read_flow_run(run.id).state
            if state is not None and state.is_running():
                return answer_of(scenes, form.load(keyset, flow_run_id=run.id))
            if state is not None and (state.is_cancelling() or state.is_cancelled()):
                raise ReviewCancelled(f"review of {run.name}: the run was cancelled while it waited for an answer")
            if state is None or not state.is_paused() or time.monotonic() >= deadline:
                # Nobody answered: ours or the server's timeout (which fails the paused run).
                client.set_flow_run_state(run.id, Running(message="review timed out"), force=True)
                return None



def scenes_for_review(cut: list[ClipRef], takes: dict[str, list[TakeRef]], actions: dict[str, str]) -> list[SceneReview]:
    """The generated scenes of the cut (footage has a single take: nothing to choose)."""
    return [SceneReview(scene_id=c.scene_id, speech=c.speech, action=actions.get(c.scene_id) or None, picked=c.take,
                        takes=takes.get(c.scene_id, [])) for c in sorted(cut, key=lambda c: c.index) if c.seed is not None]


@step(task_run_name="review-artifact-{slug}")
def publish_review(scenes: list[SceneReview], slug: str) -> None:
    """The review artifact: every scene's takes (with links where they can be opened) and the pick."""
    from storage import open_store
    from storage.links import browser_link

    if not in_prefect_run():
        return
    from prefect.artifacts import create_markdown_artifact

    settings = get_settings()
    store = open_store(settings.storage)
    link = lambda key: browser_link(store, key, settings.public_url)  # noqa: E731
    create_markdown_artifact(review_markdown(scenes, link), key=f"render-{slug}-review".replace("_", "-"),
                             description=f"Takes of {slug} to review")
