import dataclasses
import datetime
import uuid

from jobserver.common.records import JobRecord, new_id
from jobserver.common.states import JobState


def test_new_ids_are_random_version_4_uuids_in_their_usual_text() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text


def test_a_finished_record_is_the_record_with_state_and_end_time_replaced() -> None:
    start = datetime.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=datetime.UTC)
    job = JobRecord(
        id=new_id(),
        context_id="c",
        context_name="n",
        class_path="a.B",
        state=JobState.RUNNING,
        start_time=start,
        end_time=None,
        binary_ids=(1, 2),
        uris=("file:///x.zip",),
        error={"message": "m"},
        callback_url="http://example/cb",
    )
    # every field is set above, none to its default: a new field must be added here and to finished()
    assert len(dataclasses.fields(JobRecord)) == 11
    end = start + datetime.timedelta(seconds=1)
    assert job.finished(end) == dataclasses.replace(job, state=JobState.FINISHED, end_time=end)
