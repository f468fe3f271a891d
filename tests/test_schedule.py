"""With -n N the claims go to the workers costliest first, the claims that share runs on one worker, the test
that trains the most first within them; the units and costs come from the published store."""
import types

from harness.claim import PUBLISHED
from harness.schedule import UNIT_PREFIX, Plan, case_id, make_scheduler, plan
from harness.store import Store


def test_case_id_is_the_parameter_id_of_a_node_id():
    assert case_id("benchmarks/test_init.py::test_init_claims[ltfn6_he_xavier_init_better-mnist]") == \
        "ltfn6_he_xavier_init_better-mnist"
    assert case_id("benchmarks/test_x.py::test_y[a[1]]") == "a[1]"
    assert case_id("benchmarks/test_executor_overhead.py::test_executor_overhead_per_run_under_2_percent") == ""


def test_the_published_cpu_claims_that_share_runs_are_one_unit_each_run_counted_once():
    p = plan(Store(PUBLISHED / "store").iter_records(), "cpu")
    transfer = {c for c, u in p.unit_of.items() if u == p.unit_of["transfer_imagenet_vs_random"]}
    # its pretrained arms are the paintings and kittencat claims' runs (their verdicts' runs differ only in the
    # environment they were trained in, which the store's run key leaves out)
    assert transfer == {"transfer_imagenet_vs_random", "paintings_resnet34_95pct", "paintings_finetune_100pct",
                        "kittencat_resnet34_86pct", "kittencat_finetune_92pct", "kittencat_lr_finder_sweet_spot"}
    assert p.unit_of["transfer_from_scratch"] != p.unit_of["transfer_imagenet_vs_random"]
    assert p.unit_of["ltfn10_cifar_vgg_71pct"] == p.unit_of["ltfn12_bias_variance_gap"]
    for unit, seconds in p.unit_s.items():
        tests = [p.test_s[c] for c, u in p.unit_of.items() if u == unit]
        assert max(tests) - 1e-6 <= seconds <= sum(tests) + 1e-6, unit  # sums of the same runs in any order
    assert p.test_s["transfer_imagenet_vs_random"] > 2 * p.test_s["paintings_resnet34_95pct"] > 0
    assert plan(Store(PUBLISHED / "store").iter_records(), "smoke").unit_s == {}  # smoke is never published


class _Node:
    def __init__(self, n):
        self.gateway = types.SimpleNamespace(id=f"gw{n}")
        self.queue, self.ran, self.shutting_down, self.clock = [], [], False, 0.0

    def send_runtest_some(self, indices):
        self.queue.extend(indices)

    def shutdown(self):
        self.shutting_down = True


def _simulate(p: Plan, nodeids: list[str], seconds: dict[str, float], workers: int = 2) -> list[_Node]:
    """xdist's controller loop in miniature: a worker starts a test once it knows the next one (or is told to
    shut down), and reports each test done; the test takes ``seconds`` of its case."""
    config = types.SimpleNamespace(getvalue=lambda name: ["popen"] * workers if name == "tx" else None,
                                   option=types.SimpleNamespace(loadscopereorder=True))
    sched = make_scheduler(config, None, p)
    nodes = [_Node(n) for n in range(workers)]
    for node in nodes:
        sched.add_node(node)
    for node in nodes:
        sched.add_node_collection(node, nodeids)
    sched.schedule()
    while ready := [n for n in nodes if len(n.queue) >= 2 or (n.queue and n.shutting_down)]:
        node = min(ready, key=lambda n: n.clock)
        i = node.queue.pop(0)
        node.clock += seconds.get(case_id(nodeids[i]), 0.0)
        node.ran.append(nodeids[i])
        sched.mark_test_complete(node, i)
    assert sched.tests_finished and all(n.shutting_down and not n.queue for n in nodes)
    return nodes


def test_units_go_costliest_first_whole_to_one_worker_the_biggest_test_first():
    # runs of 10 s: a2 trains 4 and a1 a fifth of unit a (50 s), a3 none of its own; b 4 runs, c 3, d 2, e 1
    keys = {"a1": {("a", 4)}, "a2": {("a", i) for i in range(4)}, "a3": {("a", 0)},
            **{c: {(c, i) for i in range(n)} for c, n in (("b", 4), ("c", 3), ("d", 2), ("e", 1))}}
    p = Plan(keys, {k: 10.0 for ks in keys.values() for k in ks}, {c: UNIT_PREFIX + c[0] for c in keys})
    assert p.unit_s[UNIT_PREFIX + "a"] == 50 and p.test_s == {"a1": 10, "a2": 40, "a3": 10, "b": 40, "c": 30,
                                                              "d": 20, "e": 10}
    ids = [f"t.py::test[{c}]" for c in ("e", "a1", "d", "a2", "c", "b", "a3")] + ["t.py::test_other"]
    seconds = {"a2": 40, "a1": 10, "b": 40, "c": 30, "d": 20, "e": 10}  # a3's run is a2's: trained already
    nodes = _simulate(p, ids, seconds)
    by = {n.gateway.id: [case_id(t) for t in n.ran] for n in nodes}
    assert by["gw0"][:3] == ["a2", "a1", "a3"]  # the costliest unit, whole, the test with the most runs first
    assert by["gw1"][0] == "b"
    assert sorted(sum(by.values(), [])) == sorted(case_id(t) for t in ids)
    # longest processing time first: gw1 is free first (b, 40) and takes c, gw0 (a, 50) then d, and e is last
    assert [n.clock for n in nodes] == [70, 80] and by["gw1"][:2] == ["b", "c"] and by["gw0"][3] == "d"
    assert "" in (by["gw0"][-1], by["gw1"][-1])  # a test without a cost comes last


def test_time_left_is_the_training_left_over_the_training_done_each_run_once():
    p = plan(Store(PUBLISHED / "store").iter_records(), "cpu")
    group = ["transfer_imagenet_vs_random", "paintings_resnet34_95pct", "kittencat_resnet34_86pct"]
    assert p.left_s(group, [], 60.0) is None  # nothing done: no pace yet
    assert p.left_s(group, group, 600.0) == 0.0
    # the paintings claim's runs are part of transfer_imagenet_vs_random's, counted once
    done = sum(p.seconds[k] for k in p.keys["paintings_resnet34_95pct"])
    whole = sum(p.seconds[k] for k in p.keys["transfer_imagenet_vs_random"] | p.keys["kittencat_resnet34_86pct"])
    assert abs(p.left_s(group, ["paintings_resnet34_95pct"], 600.0) - 600.0 * (whole - done) / done) < 1e-6
    assert p.left_s(group + ["not_a_published_claim"], group[1:2], 600.0) == p.left_s(group, group[1:2], 600.0)


def test_the_controllers_claim_line_says_the_time_left_by_cost_not_by_a_count_of_claims(tmp_path):
    """Costliest first, the first claims a worker finishes took most of the time: at the count of claims'
    pace the line said 'about 493 min left' 28 minutes into a 70-minute session."""
    from harness.claim import ClaimBench
    from harness.profiles import get_profile

    s = ClaimBench(get_profile("cpu"), None, "cpu", "CPU", None, False, tmp_path, False, None, planned=3)
    s.started -= 600.0  # ten minutes in
    s.scheduler = types.SimpleNamespace(left_s=lambda done, elapsed: elapsed * 2 if done == ["big"] else None)
    relay = {"name": "big", "outcome": "held", "trained": 4, "worker": "gw0", "workers": 2, "planned": 3,
             "runs": 4, "run_min": 9.5, "resumed": 0}
    line = s.relayed_line(relay)
    assert line.startswith("claimbench: [1/3] big: held | gw0 of 2 workers: runs 4 trained (9.5 min)")
    assert line.endswith("10.0 min elapsed, about 20 min left"), line
    s.scheduler = None  # no costs (a profile never published): the pace of the claims that trained
    assert s.relayed_line({**relay, "name": "small"}).endswith("about 5 min left")
