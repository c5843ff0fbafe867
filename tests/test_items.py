"""The table layout: a task survives the trip to a DynamoDB item and back, by either road out."""

import json

from hypothesis import given
from hypothesis import strategies as st

from core.data.items import deserialize, serialize, task_from_item, task_item, task_json_from_item
from core.domain.models import PRIORITIES, STATUSES, Task

ids = st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=25, max_size=25).map(lambda rest: "0" + rest)
instants = st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
tasks = st.builds(
    Task,
    taskId=ids,
    userId=texts.filter(bool),
    title=texts.filter(bool),
    description=texts,
    status=st.sampled_from(STATUSES),
    priority=st.sampled_from(PRIORITIES),
    dueDate=st.one_of(st.none(), st.dates().map(lambda day: day.isoformat())),
    tags=st.lists(texts.filter(bool), max_size=5, unique=True),
    createdAt=instants,
    updatedAt=instants,
    completedAt=st.one_of(st.none(), instants),
    version=st.integers(1, 10**18),
)


@given(tasks)
def test_the_export_road_and_the_model_road_give_the_same_json(task: Task) -> None:
    item = serialize(task_item(task))  # as DynamoDB returns it, typed

    fast = task_json_from_item(item)
    modelled = task_from_item(deserialize(item)).to_json()

    assert fast == modelled == task.to_json()
    assert json.dumps(fast) == json.dumps(modelled)  # the same fields in the same order
