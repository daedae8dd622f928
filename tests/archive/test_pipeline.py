"""The generic pipeline under the archive output: whichever stage fails, and whenever, every stage ends and
the producer gets that error (the stage an encryptor will add is one more of these)."""
from __future__ import annotations

import threading

import pytest

from backupd.archive.pipeline import END, Pipeline
from tests.waiting import wait_for

STAGES = 3
ITEMS = 50


class Broken(Exception):
    pass


def build(fail_stage: int, fail_at: int | None):
    """STAGES stages passing numbers on; stage `fail_stage` raises at item `fail_at` (None: at its finish)."""
    pipeline, received = Pipeline(), []
    channels = [pipeline.channel(2) for _ in range(STAGES)]
    for index, inbox in enumerate(channels):
        outbox = channels[index + 1] if index + 1 < STAGES else None

        def handle(item, index=index, outbox=outbox):
            if index == fail_stage and item == fail_at:
                raise Broken(f"stage {index} at item {item}")
            outbox.put(item) if outbox is not None else received.append(item)

        def finish(index=index):
            if index == fail_stage and fail_at is None:
                raise Broken(f"stage {index} at its finish")
        pipeline.stage(f"test-stage-{index}", inbox, handle, finish, outbox)
    return pipeline, channels[0], received


def produce(pipeline, inbox) -> BaseException | None:
    try:
        for item in range(ITEMS):
            inbox.put(item)
        inbox.put(END)
        pipeline.join()
    except Broken as exc:
        return exc
    return None


def test_items_pass_through_every_stage_in_order():
    pipeline, inbox, received = build(fail_stage=-1, fail_at=None)
    assert produce(pipeline, inbox) is None
    assert received == list(range(ITEMS))


@pytest.mark.parametrize("fail_stage", range(STAGES))
@pytest.mark.parametrize("fail_at", [0, ITEMS // 2, ITEMS - 1, None], ids=["first", "middle", "last", "finish"])
def test_a_failing_stage_stops_every_stage_and_reaches_the_producer(fail_stage, fail_at):
    pipeline, inbox, _ = build(fail_stage, fail_at)
    outcome = []
    producer = threading.Thread(target=lambda: outcome.append(produce(pipeline, inbox)), daemon=True)
    producer.start()
    wait_for(lambda: not producer.is_alive(), "the producer to get the error", 20)
    assert isinstance(outcome[0], Broken) and f"stage {fail_stage}" in str(outcome[0])
    wait_for(lambda: not pipeline.running, "every stage to end", 20)


def test_failing_from_the_producer_side_ends_every_stage():
    pipeline, inbox, _ = build(fail_stage=-1, fail_at=None)
    inbox.put(1)
    pipeline.fail(Broken("the producer gave up"))
    with pytest.raises(Broken):
        inbox.put(2)
    with pytest.raises(Broken, match="gave up"):
        pipeline.join()
    assert not pipeline.running
