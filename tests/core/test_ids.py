"""Request ids: format, uniqueness across threads and forked processes."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

from llmobs_core._ids import new_request_id, new_span_id, new_trace_id

HEX_ID = re.compile(r"[0-9a-f]{32}")


def test_request_id_format() -> None:
    for _ in range(600):
        assert HEX_ID.fullmatch(new_request_id())


def test_request_ids_unique_across_threads() -> None:
    with ThreadPoolExecutor(max_workers=8) as executor:
        ids = list(executor.map(lambda _: new_request_id(), range(5_000)))

    assert len(set(ids)) == len(ids)


def test_forked_child_draws_fresh_ids() -> None:
    new_request_id()  # the parent now holds unused ids read in one block
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id and leave without clean-up
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    _, status = os.waitpid(pid, 0)

    parent_ids = {new_request_id() for _ in range(300)}
    assert os.waitstatus_to_exitcode(status) == 0
    assert HEX_ID.fullmatch(child_id)
    assert child_id not in parent_ids


def test_forked_child_draws_fresh_trace_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one trace and one span id, then leave
        os.write(write_end, f"{new_trace_id()} {new_span_id()}".encode())
        os._exit(0)
    os.close(write_end)
    child_trace, child_span = (int(v) for v in os.read(read_end, 128).split())
    os.close(read_end)
    os.waitpid(pid, 0)

    # Without a reseed, the parent's next ids equal the child's.
    assert new_trace_id() != child_trace
    assert new_span_id() != child_span
