"""Which prompt runs next and where: fair turns across clients, then checkpoint and cache affinity."""

from __future__ import annotations

from engine.backends.base import Holdings
from engine.backends.dispatch import Candidate, Chooser, FairOrder
from engine.jobstore import Job


def wanted(job: Job) -> frozenset[str]:
    """The checkpoint the test job names (the queue reads it from the compiled prompt)."""
    return frozenset(n["inputs"]["ckpt_name"] for n in job.prompt.values() if "ckpt_name" in n["inputs"])


def job(prompt_id: str, client: str | None = None, ckpt: str | None = None) -> Job:
    inputs = {"ckpt_name": ckpt} if ckpt else {"value": 1}
    return Job(prompt_id=prompt_id, number=0, prompt={"1": {"class_type": "Loader", "inputs": inputs}},
               client_id=client)


def worker(name: str, *checkpoints: str, keys: tuple[str, ...] = ()) -> Candidate:
    return Candidate(name, Holdings(frozenset(checkpoints), frozenset(keys)))


def ids(jobs) -> list[str]:
    return [j.prompt_id for j in jobs]


def test_clients_take_turns_and_each_keeps_its_own_order():
    fair = FairOrder()
    pending = [job("a1", "a"), job("a2", "a"), job("a3", "a"), job("b1", "b"), job("c1", "c"), job("b2", "b")]
    assert ids(fair.order(pending)) == ["a1", "b1", "c1", "a2", "b2", "a3"]
    fair.served("a")
    assert ids(fair.order(pending)) == ["b1", "c1", "a1", "b2", "a2", "a3"], "the client served last waits its turn"


def test_one_flooding_client_does_not_starve_another():
    chooser = Chooser(models_of=wanted)
    pending = [job(f"flood-{i}", "flood") for i in range(20)] + [job("late", "other")]
    order = []
    for _ in range(3):
        picked, _ = chooser.choose(pending, [worker("w")], [])
        order.append(picked.prompt_id)
        pending.remove(picked)
    assert order == ["flood-0", "late", "flood-1"]


def test_checkpoint_holder_first_then_cache_coverage_then_any():
    prompt = job("p", ckpt="a.safetensors")
    chooser = Chooser(models_of=wanted)
    assert chooser.choose([prompt], [worker("w0"), worker("w1", "a.safetensors")], [])[1].key == "w1"
    covers = lambda j: {"k1", "k2", "k3"}  # noqa: E731
    idle = [worker("w0", keys=("k1",)), worker("w1", keys=("k1", "k2")), worker("w2")]
    assert chooser.choose([prompt], idle, [], covers)[1].key == "w1"
    assert chooser.choose([prompt], [worker("w0", "b.safetensors"), worker("w1")], [])[1].key == "w0"


def test_a_prompt_waits_for_the_busy_worker_holding_its_model_while_another_uses_the_idle_one():
    chooser = Chooser(models_of=wanted)
    pending = [job("needs-a", ckpt="a.safetensors"), job("needs-b", ckpt="b.safetensors")]
    busy = [Holdings(frozenset({"a.safetensors"}))]
    picked, where = chooser.choose(pending, [worker("w1", "b.safetensors")], busy)
    assert (picked.prompt_id, where.key) == ("needs-b", "w1")
    alone = [job("needs-a", ckpt="a.safetensors")]
    picked, where = chooser.choose(alone, [worker("w1", "b.safetensors")], busy)
    assert picked.prompt_id == "needs-a", "with nothing else to run, the idle worker loads the model"


def test_a_passed_over_prompt_is_not_passed_over_forever():
    chooser = Chooser(max_passes=2, models_of=wanted)
    busy = [Holdings(frozenset({"a.safetensors"}))]
    head = job("needs-a", ckpt="a.safetensors")
    picked = []
    for i in range(3):
        choice, _ = chooser.choose([head, job(f"b{i}", ckpt="b.safetensors")], [worker("w1", "b.safetensors")], busy)
        picked.append(choice.prompt_id)
    assert picked == ["b0", "b1", "needs-a"]


def test_affinity_off_takes_the_head_and_the_first_idle_worker():
    chooser = Chooser(affinity=False, models_of=wanted)
    picked, where = chooser.choose([job("p", ckpt="a.safetensors")], [worker("w0"), worker("w1", "a.safetensors")], [])
    assert (picked.prompt_id, where.key) == ("p", "w0")


def test_the_turn_memory_is_bounded():
    fair = FairOrder(memory=3)
    for client in "abcd":
        fair.served(client)
    assert ids(fair.order([job("a1", "a"), job("d1", "d")])) == ["a1", "d1"], "a, forgotten, counts as never served"
