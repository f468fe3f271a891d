"""Stacked training (seeds of an arm trained together with torch.func) equals run-by-run training."""
import math

import pytest
import torch
import torch.nn.functional as F

from fixtures.models import init_convnet4, make_convnet4
from harness.stacked import train_stacked


def _models(seeds, dtype):
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        out.append(init_convnet4(make_convnet4(width=0.125), "he_xavier", g).to(dtype))
    return out


def _run_by_run(models, make_opt, x, y, steps, bs):
    n = x.shape[0]
    for model in models:
        opt = make_opt(list(model.parameters()))
        for k in range(steps):
            start = (k * bs) % max(1, n - bs)
            loss = F.cross_entropy(model(x[start:start + bs]), y[start:start + bs])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@pytest.mark.parametrize("make_opt", [lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                                      lambda p: torch.optim.Adam(p, lr=1e-3)], ids=["momentum", "adam"])
def test_stacked_equals_run_by_run_in_float64(make_opt):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, 1, 28, 28, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (640,), generator=g)
    seeds = (0, 1, 2)
    a, b = _models(seeds, torch.float64), _models(seeds, torch.float64)
    _run_by_run(a, make_opt, x, y, steps=200, bs=32)
    res = train_stacked(b, make_opt, x, y, steps=200, batch_size=32)
    assert res.diverged_at == [None, None, None]
    worst = max(float((pa - pb).detach().abs().max()) for ma, mb in zip(a, b)
                for pa, pb in zip(ma.parameters(), mb.parameters()))
    assert worst < 1e-10, worst


def test_a_diverging_model_is_masked_and_reported():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    models = _models((0, 1), torch.float32)
    with torch.no_grad():
        models[1].fc.weight.fill_(float("inf"))  # this one is broken from the first step
    before = [p.detach().clone() for p in models[0].parameters()]
    res = train_stacked(models, lambda p: torch.optim.SGD(p, lr=0.01), x, y, steps=20, batch_size=32)
    assert res.diverged_at == [None, 0]
    assert any(not torch.equal(p, q) for p, q in zip(models[0].parameters(), before))  # the healthy one trained


def test_stacked_steps_never_wait_for_the_device():
    """On the pretend CUDA device: the host reads of stacked training do not grow with the steps."""
    from fake_cuda import fake_cuda

    def reads(steps):
        with fake_cuda() as syncs:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(200, 1, 28, 28, generator=g).to("cuda")
            y = torch.randint(0, 10, (200,), generator=g).to("cuda")
            models = [m.to("cuda") for m in _models((0, 1), torch.float32)]
            res = train_stacked(models, lambda p: torch.optim.Adam(p, lr=1e-3), x, y, steps=steps, batch_size=20)
            assert res.diverged_at == [None, None] and res.losses.shape == (steps, 2)
            return dict(syncs)

    assert reads(5) == reads(20)


def _run_by_run_results(models, make_opt, train_data, valid_data, cfg):
    from harness.train import train
    out = []
    for model in models:
        opt = make_opt(list(model.parameters()))
        out.append((train(model, opt, train_data, valid_data, cfg, generator=torch.Generator()), opt))
    return out


def _data(dtype, n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 1, 28, 28, generator=g, dtype=dtype), torch.randint(0, 10, (n,), generator=g))


def test_stacked_runs_give_trains_history_weights_and_optimiser_state_in_float64():
    """train_stacked_runs against harness.train.train run by run: every history row (validation loss and error
    rate at each evaluation; the train loss to its float32 record), the weights, and each model's slice of the
    optimiser state (what the posts' flawed evaluation continues from) agree to 1e-10."""
    from harness.stacked import train_stacked_runs, unstack_optimizer
    from harness.train import TrainConfig, evaluate_while_training

    make_opt = lambda p: torch.optim.Adam(p, lr=1e-3)  # noqa: E731
    train_data, valid_data = _data(torch.float64), _data(torch.float64, 200, 1)
    cfg = TrainConfig(steps=60, batch_size=32, order="contiguous", eval_every=20, eval_batch_size=64)
    a, b = _models((0, 1, 2), torch.float64), _models((0, 1, 2), torch.float64)
    alone = _run_by_run_results(a, make_opt, train_data, valid_data, cfg)
    together, opt, params = train_stacked_runs(b, make_opt, train_data, valid_data, cfg)
    for (ra, oa), rb, ma, mb, i in zip(alone, together, a, b, range(3)):
        assert [h["step"] for h in ra.history] == [h["step"] for h in rb.history] == [20, 40, 60]
        for ha, hb in zip(ra.history, rb.history):
            for k in ("valid_loss", "error_rate"):
                assert abs(ha[k] - hb[k]) < 1e-10, (i, k, ha, hb)
            # both loops keep each step's loss in a float32 buffer (one read per evaluation): equal to its rounding
            assert abs(ha["train_loss"] - hb["train_loss"]) <= 2e-7 * abs(ha["train_loss"]), (i, ha, hb)
        assert rb.diverged is None and rb.steps == ra.steps == 60 and rb.final.keys() == ra.final.keys()
        assert max(float((p - q).detach().abs().max()) for p, q in zip(ma.parameters(), mb.parameters())) < 1e-10
        own = unstack_optimizer(opt, params, i, mb, make_opt)
        ea = evaluate_while_training(ma, oa, valid_data)
        eb = evaluate_while_training(mb, own, valid_data)
        assert abs(ea["loss"] - eb["loss"]) < 1e-10 and ea["acc"] == eb["acc"]


def test_stacked_runs_record_a_divergence_as_train_does_and_the_others_go_on():
    from harness.stacked import train_stacked_runs
    from harness.train import TrainConfig

    make_opt = lambda p: torch.optim.SGD(p, lr=0.05)  # noqa: E731
    train_data, valid_data = _data(torch.float64), _data(torch.float64, 100, 1)
    cfg = TrainConfig(steps=30, batch_size=32, order="contiguous", eval_every=10)

    def models():
        ms = _models((0, 1), torch.float64)
        with torch.no_grad():
            ms[1].fc.weight.mul_(1e200)  # overflows to a non-finite loss within a few steps
        return ms

    alone = _run_by_run_results(models(), make_opt, train_data, valid_data, cfg)
    together, _, _ = train_stacked_runs(models(), make_opt, train_data, valid_data, cfg)
    assert alone[1][0].diverged is not None
    assert together[1].diverged == alone[1][0].diverged and together[1].steps == alone[1][0].steps
    assert [h["step"] for h in together[1].history] == [h["step"] for h in alone[1][0].history]
    assert math.isnan(together[1].history[-1]["train_loss"]) and math.isnan(alone[1][0].history[-1]["train_loss"])
    assert together[0].diverged is None and len(together[0].history) == 3
    assert abs(together[0].final["valid_loss"] - alone[0][0].final["valid_loss"]) < 1e-10


def test_stacked_runs_read_the_host_per_evaluation_not_per_step():
    from fake_cuda import fake_cuda
    from harness.stacked import train_stacked_runs
    from harness.train import TrainConfig

    def reads(steps):
        with fake_cuda() as syncs:
            (x, y), (vx, vy) = _data(torch.float32, 200), _data(torch.float32, 50, 1)
            models = [m.to("cuda") for m in _models((0, 1), torch.float32)]
            cfg = TrainConfig(steps=steps, batch_size=20, order="contiguous", eval_every=steps // 2)
            res, _, _ = train_stacked_runs(models, lambda p: torch.optim.Adam(p, lr=1e-3),
                                           (x.to("cuda"), y.to("cuda")), (vx.to("cuda"), vy.to("cuda")), cfg)
            assert all(r.diverged is None and len(r.history) == 2 for r in res)
            return dict(syncs)

    assert reads(6) == reads(30)


def test_stacked_runs_need_the_shared_batch_order():
    from harness.stacked import train_stacked_runs
    from harness.train import TrainConfig

    with pytest.raises(ValueError, match="contiguous"):
        train_stacked_runs(_models((0, 1), torch.float32), lambda p: torch.optim.SGD(p, lr=0.1),
                           _data(torch.float32, 64), None, TrainConfig(steps=2, batch_size=32, order="shuffle"))


def _claims(tmp_path, *args):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "CLAIMBENCH_DEVICE": "cpu", "CLAIMBENCH_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for k in ("CLAIMBENCH_PROFILE", "CLAIMBENCH_EXECUTOR", "CLAIMBENCH_STACK", "CLAIMBENCH_SEEDS"):
        env.pop(k, None)
    data = os.environ.get("CLAIMBENCH_DATA_DIR") or str(root.parent / "shared" / "datasets")
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_optimizers.py", "-k", "optimizers_on_mnist",
                           "--profile", "smoke", "--precision", "fp32", "--data-dir", data, "--report-dir",
                           str(tmp_path / "rep"), "--cache-dir", str(tmp_path / "cache"), "--benchmark-disable",
                           "-p", "no:cacheprovider", *args], cwd=root, capture_output=True, text=True, timeout=600,
                          env=env)


def _stored(tmp_path):
    import json
    rows = [json.loads(x) for x in (tmp_path / "rep" / "store" / "runs.jsonl").read_text().splitlines()]
    return {(r["arm"],
             r["seed"]): r for r in rows if r["kind"] == "run" and r["experiment"].startswith("convnet-train")}


@pytest.mark.data
def test_a_claim_stores_each_stacked_seed_as_its_own_run_and_resumes_a_partial_group(tmp_path):
    """The ConvNet optimiser claim with --stack on (as on CUDA) against --stack off: the same runs (arm, seed,
    config), each stacked one saying so, numbers equal up to float32 rounding; a later session with one more
    seed resumes the stored seeds and trains only the new one."""
    off = _claims(tmp_path / "off", "--stack", "off", "--seeds", "3")
    if "not run (data)" in off.stdout:
        pytest.skip("MNIST is not available here")
    on2 = _claims(tmp_path / "on", "--stack", "on", "--seeds", "0,1")
    on3 = _claims(tmp_path / "on", "--stack", "on", "--seeds", "3")
    for p in (off, on2, on3):
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    a, b = _stored(tmp_path / "off"), _stored(tmp_path / "on")
    assert set(a) == set(b) and {s for _, s in a} == {0, 1, 2} and len({arm for arm, _ in a}) == 3
    for key in a:
        assert a[key]["config_hash"] == b[key]["config_hash"]
        assert a[key]["execution"] == {"mode": "run-by-run"}
        assert b[key]["execution"] == {"mode": "stacked", "seeds": [0, 1] if key[1] < 2 else [2]}, key
        ma, mb = a[key]["metrics"], b[key]["metrics"]
        assert abs(ma["test_cost"] - mb["test_cost"]) < 1e-4 * abs(ma["test_cost"]), (key, ma, mb)
        assert abs(ma["test_acc"] - mb["test_acc"]) <= 0.002 + 1e-9, (key, ma, mb)  # one of 500 images may flip
    # the second --stack on session found seeds 0 and 1 stored and trained seed 2 alone (a group of one)
    lines = (tmp_path / "on" / "rep" / "store" / "runs.jsonl").read_text().splitlines()
    runs = [x for x in lines if '"kind": "run"' in x or '"kind":"run"' in x]
    assert len(runs) == 9, len(runs)


def test_a_stack_that_runs_out_of_gpu_memory_trains_its_seeds_one_by_one(tmp_path):
    from types import SimpleNamespace

    from harness.claim import ClaimContext
    from harness.store import Store

    said = []
    bench = SimpleNamespace(store=Store(tmp_path / "store"), fresh=False, resume_commit=None, session_runs={},
                            device=torch.device("cpu"), device_name="CPU", profile=SimpleNamespace(name="cpu"),
                            announce=said.append)
    ctx = ClaimContext(bench, case="demo", budget=None, seeds=(0, 1))

    def many(seeds):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (pretend)")

    runs = ctx.run_group("arm", [0, 1], many, lambda seed: (lambda: {"metrics": {"x": seed}}), config={"k": 1},
                         experiment="e")
    assert [r["metrics"] for r in runs] == [{"x": 0}, {"x": 1}]
    assert [r["execution"] for r in runs] == [{"mode": "run-by-run"}] * 2
    assert len(said) == 1 and "one by one" in said[0]
