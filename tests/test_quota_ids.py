"""Project ID allocation: distinct under parallel processes, stable, released, locked."""

import fcntl
import multiprocessing
import os
import threading
import time

import pytest

from runtime_hooks.quota.ids import FIRST_ID, IdAllocator, IdError


def _alloc(args):
    state, i = args
    return IdAllocator(state).allocate("c%03d" % i, "/data")


def test_hundred_parallel_processes_get_distinct_ids_and_all_are_released(tmp_path):
    state = str(tmp_path)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        got = pool.map(_alloc, [(state, i) for i in range(100)], chunksize=1)
    assert len(set(got)) == 100
    assert min(got) >= FIRST_ID
    table = IdAllocator(state).owned()
    assert sorted(table) == sorted(got)
    assert {table[i]["container"] for i in got} == {"c%03d" % i for i in range(100)}
    with ctx.Pool(8) as pool:
        pool.map(_release, [(state, i) for i in range(100)], chunksize=1)
    assert IdAllocator(state).owned() == {}


def _release(args):
    state, i = args
    return IdAllocator(state).release("c%03d" % i)


def test_threads_with_their_own_lock_open_do_not_collide(tmp_path):
    got, alloc = [], IdAllocator(str(tmp_path))
    threads = [threading.Thread(target=lambda i=i: got.append(alloc.allocate("t%d" % i, "/"))) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 30


def test_same_container_and_key_get_the_same_id_again(tmp_path):
    a = IdAllocator(str(tmp_path))
    first = a.allocate("web", "/data")
    other = a.allocate("web", "/logs")
    assert other != first
    # a restart: a fresh allocator object (another hook process) sees the record
    assert IdAllocator(str(tmp_path)).allocate("web", "/data") == first
    assert IdAllocator(str(tmp_path)).allocate_new("web", "/data") == (first, False)


def test_released_ids_are_reused_lowest_first_and_never_twice_while_in_use(tmp_path):
    a = IdAllocator(str(tmp_path))
    x, y, z = (a.allocate(c, "/") for c in ("x", "y", "z"))
    assert (x, y, z) == (FIRST_ID, FIRST_ID + 1, FIRST_ID + 2)
    assert a.release("y") == [y]
    assert a.allocate("w", "/") == y
    assert a.allocate("v", "/") == FIRST_ID + 3


def test_persistent_ids_are_kept_on_request(tmp_path):
    a = IdAllocator(str(tmp_path))
    vol = a.allocate("db", "/var/lib/db", persistent=True)
    root = a.allocate("db", "/")
    assert a.release("db", keep_persistent=True) == [root]
    assert list(a.owned("db")) == [vol]
    assert a.release("db") == [vol]


def test_explicit_id_taken_by_another_container(tmp_path):
    a = IdAllocator(str(tmp_path))
    a.allocate("one", "/", wanted=FIRST_ID + 50)
    with pytest.raises(IdError, match="project ID %d is taken by container one" % (FIRST_ID + 50)):
        a.allocate("two", "/", wanted=FIRST_ID + 50)
    assert a.allocate("two", "/") == FIRST_ID  # automatic allocation skips nothing it need not


def test_allocation_waits_for_the_lock(tmp_path):
    a = IdAllocator(str(tmp_path))
    a.release("warm", ids=[a.allocate("warm", "/")])  # creates the state dir and lock file
    fd = os.open(a.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    done = []
    t = threading.Thread(target=lambda: done.append(a.allocate("late", "/")))
    t.start()
    time.sleep(0.2)
    assert done == []  # blocked behind our lock
    os.close(fd)
    t.join(5)
    assert done == [FIRST_ID]


def test_corrupt_registry_refuses_instead_of_reusing(tmp_path):
    a = IdAllocator(str(tmp_path))
    a.allocate("x", "/")
    with open(a.path, "w") as f:
        f.write("{not json")
    with pytest.raises(IdError, match="not valid JSON"):
        a.allocate("y", "/")
