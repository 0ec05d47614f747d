import pytest
from pydantic import ValidationError

from envsynth.errors import UnknownIdError
from envsynth.registry import Registry
from envsynth.schema import GeneralTask, Message, Provenance, StageReport, Task, ToolSpec


def _task(instruction: str = "do it", seed: int = 1) -> Task:
    payload = GeneralTask(
        family="f",
        family_version=1,
        variant="v",
        config={},
        state={"a": 1},
        goal={"x": 1},
        reference=[],
    )
    return Task.build(
        kind="general",
        family="f",
        env_id="e",
        dataset="d",
        instruction=instruction,
        system_prompt="s",
        tools=[ToolSpec(name="t", description="d")],
        payload=payload,
        provenance=Provenance(pipeline="p", version="1", seed=seed),
    )


def test_task_id_is_a_content_hash() -> None:
    assert _task().id == _task(seed=2).id  # provenance does not define the task
    assert _task().id != _task("do something else").id


def test_extra_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Message(role="user", content="hi", colour="blue")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Message(role="robot", content="hi")  # type: ignore[arg-type]


def test_payload_is_discriminated() -> None:
    data = _task().model_dump()
    data["payload"]["type"] = "search"
    with pytest.raises(ValidationError):
        Task.model_validate(data)


def test_stage_report_merge() -> None:
    a = StageReport(stage="s", items_in=3, items_out=2, rejections={"x": 1})
    b = StageReport(stage="s", items_in=2, items_out=0, rejections={"x": 1, "y": 1})
    m = a.merged(b)
    assert (m.items_in, m.items_out, m.rejections) == (5, 2, {"x": 2, "y": 1})


def test_unknown_id_suggests() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("retail_ops")(1)
    with pytest.raises(UnknownIdError, match="Did you mean 'retail_ops'"):
        reg.get("retail_opz")
