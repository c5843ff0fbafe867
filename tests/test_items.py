"""The table layout: a task survives the trip to a DynamoDB item and back, by either road out."""

import json

from hypothesis import given

from core.data.items import deserialize, serialize, task_from_item, task_item, task_json_from_item
from core.domain.models import Task
from tests.task_data import stored_tasks

tasks = stored_tasks().map(lambda values: Task(**values))


@given(tasks)
def test_the_export_road_and_the_model_road_give_the_same_json(task: Task) -> None:
    item = serialize(task_item(task))  # as DynamoDB returns it, typed

    fast = task_json_from_item(item)
    modelled = task_from_item(deserialize(item)).to_json()

    assert fast == modelled == task.to_json()
    assert json.dumps(fast) == json.dumps(modelled)  # the same fields in the same order
