"""Option parsing: profiles, seeds, devices and claim ids; bad values are usage errors listing valid ones."""
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.claims import CATALOGUE, Case, parse_claim_ids
from harness.device import resolve_device
from harness.profiles import PROFILES, Budget, UsageError, get_profile, parse_seeds, seeds_for

ROOT = Path(__file__).resolve().parent.parent


def test_profiles(monkeypatch):
    monkeypatch.delenv("CLAIMBENCH_PROFILE", raising=False)
    assert get_profile(None).name == "cpu"
    monkeypatch.setenv("CLAIMBENCH_PROFILE", "smoke")
    assert get_profile(None).name == "smoke" and get_profile("full").name == "full"
    with pytest.raises(UsageError, match="valid profiles: smoke, cpu, full"):
        get_profile("gpu")
    assert not PROFILES["smoke"].gives_verdicts and PROFILES["cpu"].gives_verdicts


@pytest.mark.parametrize("text,seeds", [("3", (0, 1, 2)), ("0,3,7", (0, 3, 7)), ("10-12", (10, 11, 12)),
                                        (None, None), ("", None)])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("bad", ["0", "-3", "a", "3-1", "1,1", "1,x"])
def test_malformed_seeds(bad):
    with pytest.raises(UsageError, match="seeds"):
        parse_seeds(bad)


@pytest.mark.parametrize("bad,says", [("0", "at least 1"), ("3-1", "ends \\(1\\) before it starts \\(3\\); give 1-3")])
def test_seeds_message_names_the_mistake(bad, says):
    with pytest.raises(UsageError, match=says):
        parse_seeds(bad)


def test_every_arm_gets_the_same_seeds():
    b = Budget(seeds=4)
    assert seeds_for(b, None) == (0, 1, 2, 3) and seeds_for(b, (7, 9)) == (7, 9)


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UsageError, match="auto, cpu, cuda, cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_claim_ids():
    assert parse_claim_ids("ltfn9_checkpoint_184mb") == ("ltfn9_checkpoint_184mb",)
    with pytest.raises(UsageError, match="Did you mean: ltfn9_checkpoint_184mb"):
        parse_claim_ids("ltfn9_checkpoint_184")
    assert len(CATALOGUE) == 30


def test_case_needs_a_budget_per_profile_and_a_known_id():
    with pytest.raises(ValueError, match="no budget"):
        Case("ltfn9_checkpoint_184mb", {"cpu": Budget()})
    with pytest.raises(UsageError):
        Case("nope", {p: Budget() for p in PROFILES})


def _pytest(*args):
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


USAGE_ERRORS = [  # (options, what the message must say)
    (("--profile", "gpu"), "valid profiles: smoke, cpu, full"),
    (("--claims", "ltfn9_checkpoint"), "unknown claim id"),
    (("--seeds", "two"), "malformed --seeds"),
    (("--folder", "kittencat"), "malformed --folder 'kittencat'; give NAME=DIR"),
    (("--claims", ",,,"), "names no claim"),
    (("--seeds", "99999999999"), "more than 1000 seeds"),
    (("--folder", "kittens=/tmp"), "unknown folder dataset(s) kittens"),
    (("--profile", "smoke", "--report-dir", "reports"), "never writes into the published report"),
    (("--profile", "smoke", "--publish"), "never writes into the published report"),
    (("--data-dir", "/no/such/folder"), "/no/such/folder': no such folder"),
    (("--weights", "/no/such/weights.pth"), "/no/such/weights.pth': no such file"),
    (("--report-dir", "reports"), "add --publish to write into it on purpose"),
    (("--publish", "--report-dir", "/tmp/elsewhere"), "cannot go with --report-dir"),
    (("--report-dir", "/proc/claimbench-report"), "cannot be written"),
    (("--seeds", "100"), "--seeds asks for 100 seeds per arm"),
]


def test_command_line_usage_errors_and_collection():
    for args, message in USAGE_ERRORS:
        bad = _pytest("benchmarks", "--collect-only", "-q", *args)
        assert bad.returncode == 4 and message in bad.stderr, (args, bad.stderr)
    ok = _pytest("benchmarks", "--collect-only", "-q", "--profile", "smoke")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for cid in CATALOGUE:  # every claim of the catalogue has a test
        assert cid in ok.stdout, cid
    one = _pytest("benchmarks", "--collect-only", "-q", "-k", "ltfn9_checkpoint_184mb")
    assert one.stdout.count("ltfn9_checkpoint_184mb") == 1
    sel = _pytest("benchmarks", "--collect-only", "-q", "--claims", "ltfn9_checkpoint_184mb")
    assert sel.returncode == 0 and "test_speed" not in sel.stdout and "overhead" not in sel.stdout, sel.stdout
    assert sel.stdout.count("::") == 1


def test_publishing_needs_a_clean_checkout(tmp_path):
    """Published runs name the commit of their code, so --publish refuses a checkout with uncommitted changes
    to its code (the report folder, which the runs write, does not count) and a folder git cannot read."""
    from harness.plugin import _unclean_checkout

    assert _unclean_checkout({"commit": "abc", "dirty": False}) == ""
    assert "uncommitted changes" in _unclean_checkout({"commit": "abc", "dirty": True})
    assert "not a git checkout" in _unclean_checkout({"commit": "unknown", "dirty": None})
    env = {**os.environ, "GIT_DIR": str(tmp_path / "no-repo")}  # git fails here as outside any checkout
    bad = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "--publish"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 4 and "--publish needs a clean checkout" in bad.stderr, bad.stderr


def test_markers_select_what_they_describe():
    fast = _pytest("benchmarks", "--collect-only", "-q", "-m", "not slow")
    assert fast.returncode == 0 and "test_counting" not in fast.stdout and "test_speed" not in fast.stdout
    assert "ltfn9_checkpoint_184mb" in fast.stdout and "ltfn8_mnist_vgg_979_vs_973" in fast.stdout
    nodata = _pytest("benchmarks", "--collect-only", "-q", "-m", "not data and not slow")
    assert "ltfn8_mnist_vgg_979_vs_973" not in nodata.stdout and "ltfn7_optimizer_2d_comparison" in nodata.stdout


def test_the_full_profile_never_falls_back_to_the_cpu_silently(tmp_path):
    auto = _pytest("benchmarks/test_params.py", "-k", "ltfn9_checkpoint_184mb", "--profile", "full", "-rs",
                   "--report-dir", str(tmp_path), "-p", "no:cacheprovider")
    if "CUDA" in auto.stdout.split("claimbench: device=")[1].splitlines()[0]:
        return  # a GPU is visible: nothing to fall back from
    assert auto.returncode == 0 and "not run (device)" in auto.stdout and "--device cpu" in auto.stdout, auto.stdout


def test_precision_is_a_choice_recorded_with_every_run(tmp_path, monkeypatch):
    import torch

    from harness import device as dev
    from harness.store import Store

    cpu = torch.device("cpu")
    outer = dev.active_precision()  # this test session's own (the plugin activated it)
    parse = dev.cpu_bf16_flags
    assert parse("flags\t: fpu avx2 amx_bf16 avx512_bf16\n") == ["avx512_bf16", "amx_bf16"]
    assert parse("flags\t: fpu avx2\n") == []
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        dev.resolve_precision("fp8", cpu)
    assert dev.resolve_precision(None, cpu, default="fp32").mode == "fp32"  # smoke's default
    monkeypatch.setattr(dev, "cpu_bf16_flags", lambda cpuinfo=None: [])  # a CPU that emulates bf16
    auto = dev.resolve_precision("auto", cpu)
    assert auto.mode == "fp32" and "no bf16 instructions" in auto.note
    assert dev.resolve_precision(None, cpu).mode == "fp32"  # the cpu / full default is auto
    monkeypatch.setattr(dev, "cpu_bf16_flags", lambda cpuinfo=None: ["avx512_bf16"])  # one that runs it natively
    native = dev.resolve_precision(None, cpu)
    assert native.mode == "bf16" and "avx512_bf16" in native.note
    assert dev.resolve_precision("fp32", cpu) == dev.Precision("fp32")  # a value: no note when nothing was chosen
    assert dev.active_precision() == outer  # resolving activates nothing
    store, calls = Store(tmp_path), []

    def run(session=None, role=""):
        return store.run(experiment="e", profile="cpu", arm="a", config={}, seed=0, device="cpu", device_name="CPU",
                         fn=lambda: calls.append(1) or {}, session=session, role=role)

    with native.activate():
        assert dev.autocast(cpu).fast_dtype == torch.bfloat16 and dev.channels_last(cpu)
        bf16 = run()
    with dev.Precision().activate():  # none chosen (outside a session): PyTorch's default layout on the CPU
        assert not dev.channels_last(cpu)
    with dev.Precision("fp32").activate():
        assert dev.channels_last(cpu) and isinstance(dev.autocast(cpu), contextlib.nullcontext)
        fp32 = run()
    assert calls == [1, 1] and bf16["env"]["precision"] == "bf16" and fp32["env"]["precision"] == "fp32 channels_last"
    with native.activate():
        session = {}
        again = run(session)
        with dev.precision_override("fp32"):  # the control seed: its own environment, in the same session
            control = run(session, "precision-control")
        assert dev.precision() == "bf16"
    assert control["run_id"] == fp32["run_id"] and again["run_id"] == bf16["run_id"]
    assert dev.active_precision() == outer  # each block restored what was active before it


def test_deterministic_mode_is_recorded_with_the_runs(tmp_path):
    import json

    r = _pytest("benchmarks/test_params.py", "-k", "ltfn9_checkpoint_184mb", "--profile", "smoke", "--deterministic",
                "--report-dir", str(tmp_path), "-p", "no:cacheprovider")
    assert r.returncode == 0, r.stdout + r.stderr
    runs = [json.loads(x) for x in (tmp_path / "store" / "runs.jsonl").read_text().splitlines()]
    assert {x["env"]["deterministic"] for x in runs if x["kind"] == "run"} == {True}


def test_the_install_id_is_made_once_per_installation(tmp_path, monkeypatch):
    from harness import device as dev

    monkeypatch.setenv("CLAIMBENCH_HOME", str(tmp_path / "a"))
    first = dev.install_id()
    assert first == dev.install_id() and (tmp_path / "a" / "install-id").read_text().strip() == first
    assert dev.environment("CPU")["install_id"] == first and "machine_id" not in dev.environment("CPU")
    monkeypatch.setenv("CLAIMBENCH_HOME", str(tmp_path / "b"))  # another installation, same machine id
    assert dev.install_id() != first


def _claim_session(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMBENCH_")}
    env.update(CLAIMBENCH_OFFLINE="1", CLAIMBENCH_DEVICE="cpu", CLAIMBENCH_HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "pytest", "--profile", "smoke", "--report-dir",
                           str(tmp_path / "rep"), "-p", "no:cacheprovider", "-q", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_damaged_data_file_and_damaged_folder_fail_alike_in_one_line(tmp_path):
    """A damaged MNIST file and a damaged image folder are the user's input gone wrong: both are recorded as
    "not run (data)" naming the file, and both fail the session (exit 1) with one line, no traceback."""
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "mnist.npz").write_bytes(b"PK\x03\x04 torn")
    img = data / "paintings" / "picasso" / "a.png"
    img.parent.mkdir(parents=True)
    from PIL import Image
    Image.new("RGB", (8, 8)).save(img)
    (data / "SHA256SUMS.folders").write_text("0" * 64 + "  paintings/picasso/a.png\n")
    for target, claim, named in (("benchmarks/test_optimizers.py", "ltfn7_optimizers_on_mnist", "mnist.npz"),
                                 ("benchmarks/test_transfer.py", "paintings_resnet34_95pct", "a.png")):
        out = _claim_session(tmp_path, target, "--claims", claim, "--data-dir", str(data))
        text = out.stdout + out.stderr
        assert out.returncode == 1, text[-3000:]
        assert "not run (data): damaged: " in text and named in text, text[-3000:]
        assert "Traceback" not in text and "raise " not in text, text[-3000:]


def test_a_weights_file_that_is_not_a_state_dict_is_refused_in_one_line(tmp_path):
    """A text file, a tensor, or a dict of non-tensors given as --weights: one line each, exit 1 (at smoke a
    --weights file switches the posts' claims to ResNet-34, so the file is read)."""
    files = {"text": tmp_path / "w.txt", "tensor": tmp_path / "t.pth", "strings": tmp_path / "s.pth"}
    files["text"].write_text("not weights\n")
    torch.save(torch.zeros(3), files["tensor"])
    from torchvision.models import resnet34
    torch.save({k: "x" for k in resnet34(weights=None).state_dict()}, files["strings"])
    expected = {"text": "could not be read as a state dict", "tensor": "holds a Tensor, not a state dict",
                "strings": "is not a ResNet-34 state dict"}
    for kind, path in files.items():
        out = _claim_session(tmp_path, "benchmarks/test_counting.py", "--claims", "counting_1to5_baseline_86pct",
                             "--weights", str(path))
        text = out.stdout + out.stderr
        assert out.returncode == 1 and expected[kind] in text, (kind, text[-3000:])
        assert "Traceback" not in text and "AttributeError" not in text, (kind, text[-3000:])


def test_every_option_and_its_environment_variable_is_in_the_guide():
    """The plugin's docstring points to docs/guide.md for its options; this keeps that list whole."""
    import re

    src = (ROOT / "harness" / "plugin.py").read_text()
    guide = (ROOT / "docs" / "guide.md").read_text()
    options = re.findall(r'addoption\(\s*"(--[a-z-]+)"', src)
    assert len(options) >= 20
    assert [o for o in options if f"`{o}" not in guide] == []
    assert sorted(e for e in set(re.findall(r"CLAIMBENCH_[A-Z_]+", src)) if e not in guide) == []


def test_auto_keeps_fp32_for_a_network_slower_in_bf16_on_the_cpu():
    """Where ``--precision auto`` chose bf16 on a CPU, a claim whose network is slower in bf16 there (Lite0's
    depthwise convolutions) trains in fp32 and records so; an explicit bf16, CUDA and other networks keep bf16."""
    from types import SimpleNamespace

    from benchmarks import counting, test_transfer
    from harness import device as dev
    from harness.claim import ClaimContext

    cpu, cuda = torch.device("cpu"), torch.device("cuda")

    def numerics(precision, device, settings):
        bench = SimpleNamespace(precision=precision, device=device)
        return ClaimContext(bench, case=None, budget=Budget(settings=settings), seeds=(0,)).numerics

    auto = dev.Precision("bf16", "auto: this CPU has amx_bf16", auto=True)
    for lite0 in (test_transfer.PRETRAINED["cpu"], counting.PRETRAINED["cpu"]):
        kept = numerics(auto, cpu, lite0)
        assert kept.mode == "fp32" and kept.auto and "slower in bf16" in kept.note
        with kept.activate():
            assert dev.environment("CPU")["precision"] == "fp32 channels_last" and dev.channels_last(cpu)
        assert numerics(dev.Precision("bf16"), cpu, lite0).mode == "bf16"  # asked for by name: kept
        assert numerics(auto, cuda, lite0) is auto
    assert numerics(auto, cpu, test_transfer.SCALE["cpu"]) is auto  # the from-scratch ResNet-10 gains from bf16
    assert numerics(auto, cpu, {"arch": "efficientnet_lite0"}) is auto  # a plain mapping declares nothing
    assert dev.resolve_precision("auto", cpu).auto and not dev.resolve_precision("bf16", cpu).auto


def test_auto_keeps_fp32_where_no_network_is_trained():
    """The Beale trajectories and the parameter tables train nothing: auto keeps fp32 for them on any device, so
    their pages do not name bf16 autocast as a deviation from the posts (they did, after a bf16 session)."""
    from types import SimpleNamespace

    from benchmarks import test_optimizers, test_params
    from harness import device as dev
    from harness.claim import ClaimContext

    auto = dev.Precision("bf16", "auto: this CPU has amx_bf16", auto=True)
    for budget in (test_optimizers.SAME, test_params.SAME):
        for device in (torch.device("cpu"), torch.device("cuda")):
            ctx = ClaimContext(SimpleNamespace(precision=auto, device=device), case=None, budget=budget, seeds=(0,))
            assert ctx.numerics.mode == "fp32" and "no network" in ctx.numerics.note
            assert "bf16" not in ctx._deviation()
        named = ClaimContext(SimpleNamespace(precision=dev.Precision("bf16"), device=torch.device("cpu")),
                             case=None, budget=budget, seeds=(0,))
        assert named.numerics.mode == "bf16"  # asked for by name: kept
    for budget in (test_optimizers.SAME, test_params.SAME):  # the runs' config (and so their keys) is unchanged
        assert budget.as_config() == Budget().as_config()
