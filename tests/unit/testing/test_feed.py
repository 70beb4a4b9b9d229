"""The thread that checks a file's rows (``ingest.feed.threaded``): how far ahead it runs, and
that it stops with its consumer."""

from __future__ import annotations

import threading
import time

import pytest

from bastion.testing.ingest.feed import Chunk, threaded


def _counting(produced: list[int], total: int):
    def produce(call):
        for n in range(total):
            produced.append(n)
            yield Chunk(rows=[(n,)])

    return produce


def test_the_producer_is_at_most_one_chunk_ahead():
    produced: list[int] = []
    seen = []
    for chunk in threaded(_counting(produced, 6)):
        seen.append(chunk.rows[0][0])
        time.sleep(0.05)  # the consumer lands slowly: the producer must wait for it
        # Taken so far: len(seen); the next one may be built already, no more.
        assert len(produced) <= len(seen) + 1
    assert seen == list(range(6))


def test_calls_run_in_the_consumers_thread_and_answer_the_producer():
    consumer = threading.get_ident()
    answers = []

    def produce(call):
        answers.append(call(threading.get_ident))
        yield Chunk(rows=[(1,)])

    assert [c.rows for c in threaded(produce)] == [[(1,)]]
    assert answers == [consumer]


def test_an_error_in_the_producer_is_raised_in_the_consumer():
    def produce(call):
        yield Chunk(rows=[(1,)])
        raise ValueError("bad row source")

    with pytest.raises(ValueError, match="bad row source"):
        list(threaded(produce))


def test_leaving_early_stops_the_producer():
    produced: list[int] = []
    before = threading.active_count()
    for _chunk in threaded(_counting(produced, 1_000)):
        break
    # The thread was joined on the way out, a chunk or two in.
    assert threading.active_count() == before
    assert len(produced) <= 2
