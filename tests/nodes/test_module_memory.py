"""Values kept for a module (compiled calls, pending compiles, digests) are found only for that module with its
patches, stay within their bound, and go when the module is collected, even mid-update."""

import gc

import torch

from nodes.models.module_memory import ModuleMemory


def module() -> torch.nn.Module:
    return torch.nn.Linear(2, 2)


def test_a_value_is_found_only_for_its_module_and_patches():
    memory = ModuleMemory()
    a, b, patch = module(), module(), object()
    memory.put("k", a, (patch,), "compiled for a")
    assert memory.get("k", a, (patch,)) == (True, "compiled for a")
    assert memory.get("k", b, (patch,)) == (False, None)  # another module under a reused key
    assert memory.get("k", a, ()) == (False, None)  # the patch taken off since


def test_the_least_recently_used_goes_beyond_the_bound():
    memory = ModuleMemory(bound=2)
    a = module()
    memory.put(1, a, (), "one")
    memory.put(2, a, (), "two")
    memory.get(1, a, ())
    memory.put(3, a, (), "three")
    assert (memory.get(2, a, ()), len(memory)) == ((False, None), 2)
    assert memory.get(1, a, ())[0] and memory.get(3, a, ())[0]


def test_entries_go_with_their_module():
    memory = ModuleMemory()
    kept, dropped = module(), module()
    memory.put("kept", kept, (), 1)
    memory.put("dropped", dropped, (), 2)
    memory.put("dropped too", dropped, (), 3)
    del dropped
    gc.collect()
    assert len(memory) == 1 and memory.values() == [1]


def test_a_module_collected_during_an_update_goes_when_the_update_ends():
    memory = ModuleMemory()
    modules = [module(), module()]
    memory.put("first", modules[0], (), "a")
    memory.put("second", modules[1], (), "b")

    def drop_the_second_module(key, value):  # runs under the memory's lock
        if key == "first":
            modules.pop()
        return False

    assert memory.take(drop_the_second_module) == []
    assert memory.values() == ["a"]


def test_take_removes_what_it_returns_with_the_live_module():
    memory = ModuleMemory()
    a = module()
    memory.put("done", a, ("p",), "finished")
    memory.put("running", a, (), "not yet")
    assert memory.take(lambda key, value: value == "finished") == [("done", a, ("p",), "finished")]
    assert memory.values() == ["not yet"]
