"""A render's heap policy: the collector skips what existed before the render, and a process
that renders again still collects what its earlier renders left behind."""

from __future__ import annotations

import gc
import weakref

from reelflow.heap import freeze_heap


class Node:
    def __init__(self):
        self.me = self           # a cycle: only the cyclic collector frees it


def test_objects_alive_at_a_render_start_are_frozen_and_later_garbage_still_collected():
    freeze_heap()                                # as a render starts
    assert gc.get_freeze_count() > 0
    left = Node()
    gone = weakref.ref(left)
    del left                                     # cyclic garbage made during a render
    freeze_heap()                                # the next render of this process
    assert gone() is None
    assert gc.get_freeze_count() > 0
