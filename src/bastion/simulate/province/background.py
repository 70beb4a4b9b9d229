"""The second process: a large build generates there while this process writes."""

from __future__ import annotations

import multiprocessing
import os
import queue
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from bastion.core.config import get_settings
from bastion.simulate.province.generation import Batch, DistrictPlan, StartingPoint, generate


def batches_from_child(start: StartingPoint, plans: Sequence[DistrictPlan]) -> Iterator[Batch]:
    """Run :func:`generate` in a fresh process and hand its batches over as they come, at
    most a few ahead (so memory stays flat when writing is the slower half).

    A spawned process (not a fork) so no database connection or lock is shared with it; it
    gets the data key explicitly, since it encrypts the ID numbers."""
    ctx = multiprocessing.get_context("spawn")
    channel: Any = ctx.Queue(maxsize=3)
    child = ctx.Process(
        target=_generate_into,
        args=(channel, get_settings().data_key, start, list(plans)),
        name="bastion-province-generator",
        daemon=True,
    )
    child.start()
    try:
        while True:
            try:
                item = channel.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise RuntimeError(
                        f"the province generator died (exit code {child.exitcode})"
                    ) from None
                continue
            if item is None:
                break
            if isinstance(item, str):
                raise RuntimeError(f"the province generator failed:\n{item}")
            yield item
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        channel.close()
        channel.join_thread()


def _generate_into(
    channel: Any, data_key: str, start: StartingPoint, plans: list[DistrictPlan]
) -> None:
    """The second process's work: every batch into ``channel``, then None (or a traceback)."""
    os.environ["BASTION_DATA_KEY"] = data_key
    get_settings.cache_clear()
    try:
        for batch in generate(start, plans):
            channel.put(batch)
        channel.put(None)
    except Exception:  # noqa: BLE001 - any failure is reported to the parent, which raises it
        channel.put(traceback.format_exc())
