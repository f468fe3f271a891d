"""The claimbench pytest plugin: options, markers, the ``claimbench`` fixture, the claim lines, the terminal
summary and the report at the end. The claim API itself (``ClaimBench``, ``ClaimContext``) is
``harness.claim``.

Loaded by the repository's ``conftest.py``. Its options (group "claimbench") are listed by
``pytest --help`` and, with the environment variable each falls back to, in ``docs/guide.md``
(``tests/test_options.py`` checks that the two agree).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import NoReturn

import pytest
import torch

from harness import memo, progress, workerlines
from harness import report as report_mod
from harness.claim import PUBLISHED, ROOT, USER_RESULTS, ClaimBench
from harness.claims import CATALOGUE, Case, is_data_claim, is_slow_claim, parse_claim_ids
from harness.device import (device_name, resolve_device, resolve_precision, set_deterministic, threads_per_worker,
                            versions)
from harness.executors import make_executor
from harness.profiles import UsageError, get_profile, parse_seeds
from harness.seeding import VARY
from harness.store import Store, StoreCorruptError, git_info
from harness.verdict import NOT_RUN
from harness.verdicts import outcome_label, worded

STATE_KEY = pytest.StashKey["ClaimBench"]()
ACTIVE_KEY = pytest.StashKey["contextlib.ExitStack"]()  # keeps the session's precision active
FOLDER_DATASETS = ("paintings", "kittencat")  # the image-folder datasets --folder may replace
MANY_SEEDS = 20  # --seeds above this per arm needs --yes at a profile that decides (hours of runs)
MARKERS = {
    "gpu": "needs CUDA (skipped as 'not run: device' without it)",
    "data": "needs a dataset from --data-dir (skipped as 'not run: data' without it)",
    "slow": "slow even within its profile; deselect with -m 'not slow'",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("claimbench", "claimbench: re-running the posts' claims")
    g.addoption("--profile", default=None, help="smoke | cpu | full (env CLAIMBENCH_PROFILE; default cpu)")
    g.addoption("--seeds", default=None,
                help="seeds for every arm: a count (5), a list (0,3,7) or a range (10-14) "
                     "(env CLAIMBENCH_SEEDS; default: each claim's budget for the profile)")
    g.addoption("--device", default=None, help="auto | cpu | cuda | cuda:N (env CLAIMBENCH_DEVICE)")
    g.addoption("--precision", default=None,
                help="fp32 | bf16 | auto (env CLAIMBENCH_PRECISION; default: fp32 at the smoke profile, auto "
                     "otherwise; auto: bf16 autocast on CUDA and on a CPU with bf16 instructions (avx512_bf16, "
                     "amx_bf16), fp32 elsewhere; both train in channels_last). Under bf16 each family "
                     "also trains one fp32 control seed, shown beside the bf16 seeds")
    g.addoption("--deterministic", action="store_true", default=None,
                help="deterministic algorithms (cuBLAS workspace, no cuDNN autotuning) for audits; slower on CUDA "
                     "(env CLAIMBENCH_DETERMINISTIC=1)")
    g.addoption("--data-dir", default=None,
                help="folder holding the datasets (env CLAIMBENCH_DATA_DIR; default: the user cache folder, "
                     "~/.cache/claimbench/data, where downloads go)")
    g.addoption("--offline", action="store_true", default=None,
                help="never download: missing datasets / weights make their claims 'not run' "
                     "(env CLAIMBENCH_OFFLINE=1; default: download what is missing into the data folder)")
    g.addoption("--allow-download", action="store_true", default=None,
                help="download what is missing (the default; overrides CLAIMBENCH_OFFLINE)")
    g.addoption("--user-weights", action="store_true", default=None,
                help="run the posts' pretrained claims on a --weights file that is not torchvision's ImageNet "
                     "ResNet-34; their verdicts are labelled as such (env CLAIMBENCH_USER_WEIGHTS=1)")
    g.addoption("--weights", default=None,
                help="ImageNet ResNet-34 state dict file for the fastai claims, loaded with weights_only "
                     "(env CLAIMBENCH_WEIGHTS; else torch hub's cache, else a download with --allow-download)")
    g.addoption("--cache-dir", default=None,
                help="where rendered datasets are cached (env CLAIMBENCH_CACHE_DIR; default .cache/)")
    g.addoption("--folder", action="append", default=[], metavar="NAME=DIR",
                help="use DIR (one sub-folder per class) as the folder dataset NAME, e.g. kittencat=~/pets "
                     "(repeatable; env CLAIMBENCH_FOLDER_<NAME>)")
    g.addoption("--report-dir", default=None,
                help="where the store and the markdown report go (env CLAIMBENCH_REPORT_DIR; default results/ in the "
                     "checkout: your own runs and report, untracked, never the published reports/)")
    g.addoption("--publish", action="store_true", default=False,
                help="write the runs and the report into the published reports/ (what maintainers do from a clean "
                     "clone: tox -e publish); without it a session never touches reports/")
    g.addoption("--fresh", action="store_true", default=False,
                help="re-run every run instead of resuming finished ones from the store")
    g.addoption("--claims", default=None, help="comma-separated claim ids to run (others deselected)")
    g.addoption("--yes", action="store_true", default=False,
                help=f"go ahead with --seeds above {MANY_SEEDS} per arm (hours of runs at the cpu or full profile)")
    g.addoption("--vary", default=None,
                help="all (default) | init | split | order | augment: let one source of randomness follow the seed "
                     "and hold the others at seed 0's values, to see which drives the seed-to-seed spread "
                     "(env CLAIMBENCH_VARY). Such runs are stored beside the claim's and decide nothing; claims "
                     "whose family cannot isolate that source are deselected")
    g.addoption("--stack", default=None,
                help="auto (default) | on | off: train the seeds of an arm together (stacked parameters, one "
                     "vmapped step; the ConvNet family). auto: on CUDA only (on the CPU it is slower). Each seed is "
                     "still stored as its own run, saying how it was executed (env CLAIMBENCH_STACK)")
    g.addoption("--executor", default=None,
                help="where runs execute: inline (default) | local (a process pool on this machine: one worker "
                     "per visible GPU, or --workers CPU workers) | submitit (each run a job: SLURM, or submitit's "
                     "local executor) (env CLAIMBENCH_EXECUTOR)")
    g.addoption("--workers", type=int, default=None,
                help="--executor local: CPU worker processes (default 2; torch threads divided between them), or "
                     "at most this many GPUs")
    g.addoption("--cluster", default=None, help="--executor submitit: slurm | local | debug (default: slurm "
                                                "where sbatch exists, else local)")
    g.addoption("--slurm-partition", default=None, help="--executor submitit: the SLURM partition")
    g.addoption("--gpus-per-node", type=int, default=None,
                help="--executor submitit: GPUs per job (default 1 on CUDA, 0 on the CPU)")
    g.addoption("--timeout-min", type=int, default=None, help="--executor submitit: each job's time limit "
                                                             "(default 240; a job past it is requeued and resumes)")


def _terminate_as_interrupt(signum, frame) -> NoReturn:
    """SIGTERM (tox passes Ctrl-C on as SIGINT then SIGTERM; a scheduler ends a job with it) ends the session as
    Ctrl-C does: pytest then still prints the verdicts so far, and the report is rebuilt from what is stored."""
    raise KeyboardInterrupt(f"terminated (signal {signum})")


def _unclean_checkout(git: dict) -> str:
    """'' when the code is a git checkout without uncommitted changes (``store.git_info``; the report folder
    does not count), else what a published run could not name: the exact code that produced it."""
    if git.get("dirty") is None:
        return (f"{ROOT} is not a git checkout (or git failed), so no commit would name the published runs' code; "
                "publish from a fresh clone (tox -e publish)")
    if git["dirty"]:
        return (f"tracked files of {ROOT} outside reports/ have uncommitted changes (`git status` lists them); "
                "commit them, then publish from a fresh clone (tox -e publish)")
    return ""


def _unwritable(folder: Path) -> str:
    """'' when the store and pages can be written under ``folder`` (created if missing), else why not."""
    try:
        (folder / "store").mkdir(parents=True, exist_ok=True)
        probe = folder / "store" / f".write-test-{os.getpid()}"
        probe.write_text("x")
        probe.unlink()
        return ""
    except OSError as e:
        return e.strerror or str(e)


def default_data_dir() -> Path:
    """Where datasets are read from and downloaded to when no --data-dir is given."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "claimbench" / "data"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    opt = config.getoption
    try:
        profile = get_profile(opt("--profile"))
        seeds = parse_seeds(opt("--seeds") if opt("--seeds") is not None
                            else os.environ.get("CLAIMBENCH_SEEDS"))
        device = resolve_device(opt("--device"))
        det = bool(opt("--deterministic")) or _env_flag("CLAIMBENCH_DETERMINISTIC")
        numerics = resolve_precision(opt("--precision"), device, default="fp32" if profile.name == "smoke" else "auto",
                                     deterministic=det)
        set_deterministic(det)
        claims = parse_claim_ids(opt("--claims"))
        if seeds is not None and len(seeds) > MANY_SEEDS and profile.gives_verdicts and not opt("--yes"):
            raise UsageError(f"--seeds asks for {len(seeds)} seeds per arm: every arm of every selected claim trains "
                             f"{len(seeds)} runs, about {len(seeds) / 5:.0f}x the default (the {profile.name} "
                             f"profile's budgets use 5 per compared arm; at cpu that default takes about 25 minutes on "
                             f"2 cores, fp32 about twice). Add --yes to go ahead, or narrow it with --claims")
        vary = (opt("--vary") or os.environ.get("CLAIMBENCH_VARY") or "all").strip().lower()
        if vary not in VARY:
            raise UsageError(f"unknown --vary {vary!r}; valid values: {', '.join(VARY)}")
        stack = (opt("--stack") or os.environ.get("CLAIMBENCH_STACK") or "auto").strip().lower()
        if stack not in ("auto", "on", "off"):
            raise UsageError(f"unknown --stack {stack!r}; valid values: auto, on, off")
        cache_dir = Path(opt("--cache-dir") or os.environ.get("CLAIMBENCH_CACHE_DIR") or str(ROOT / ".cache")
                         ).expanduser().resolve()
        executor = make_executor(opt("--executor"), device_type=device.type, workers=opt("--workers"),
                                 cache_dir=cache_dir, cluster=opt("--cluster"),
                                 partition=opt("--slurm-partition"), gpus_per_node=opt("--gpus-per-node"),
                                 timeout_min=opt("--timeout-min"))
    except UsageError as e:
        raise pytest.UsageError(str(e)) from None
    explicit_data = opt("--data-dir") or os.environ.get("CLAIMBENCH_DATA_DIR")
    if explicit_data and not Path(explicit_data).expanduser().is_dir():
        raise pytest.UsageError(f"--data-dir / CLAIMBENCH_DATA_DIR {explicit_data!r}: no such folder (give the folder "
                                f"that holds mnist/, cifar-10-batches-py/, ...; leave it out to use "
                                f"{default_data_dir()})")
    data_dir = explicit_data or str(default_data_dir())
    report_dir = opt("--report-dir") or os.environ.get("CLAIMBENCH_REPORT_DIR")
    published = PUBLISHED.resolve()
    publish = bool(opt("--publish"))
    if not profile.gives_verdicts:  # smoke never writes into the published report
        if publish or (report_dir and Path(report_dir).expanduser().resolve() == published):
            raise pytest.UsageError(f"the {profile.name} profile never writes into the published report "
                                    f"({published}); give another --report-dir or leave it out")
        report_dir = report_dir or str(ROOT / ".cache" / "smoke-report")
    resume_commit = None  # publishing resumes only the runs of the commit it publishes from
    if publish:
        if report_dir and Path(report_dir).expanduser().resolve() != published:
            raise pytest.UsageError(f"--publish writes into {published}; it cannot go with --report-dir {report_dir}")
        report_dir = str(published)
        code = git_info()
        unclean = _unclean_checkout(code)
        if unclean:
            raise pytest.UsageError(f"--publish needs a clean checkout: {unclean}")
        resume_commit = code["commit"]
    elif report_dir and Path(report_dir).expanduser().resolve() == published:
        raise pytest.UsageError(f"{published} is the published report: add --publish to write into it on purpose "
                                "(maintainers, from a clean clone), or leave --report-dir out for your own results/")
    report_dir = report_dir or str(USER_RESULTS)
    problem = _unwritable(Path(report_dir).expanduser())
    if problem and not _xdist_worker(config):
        raise pytest.UsageError(f"the report folder {report_dir} cannot be written ({problem}); give a writable "
                                "--report-dir. Nothing was trained")
    allow = opt("--allow-download")
    weights = opt("--weights") or os.environ.get("CLAIMBENCH_WEIGHTS")
    if weights and not Path(weights).expanduser().is_file():
        raise pytest.UsageError(f"--weights / CLAIMBENCH_WEIGHTS {weights!r}: no such file")
    folders = {k[len("CLAIMBENCH_FOLDER_"):].lower(): Path(v).expanduser()
               for k, v in os.environ.items() if k.startswith("CLAIMBENCH_FOLDER_") and v}
    for item in opt("--folder") or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise pytest.UsageError(f"malformed --folder {item!r}; give NAME=DIR, e.g. kittencat=~/pets")
        folders[name.strip().lower()] = Path(path.strip()).expanduser()
    unknown = sorted(set(folders) - set(FOLDER_DATASETS))
    if unknown:
        raise pytest.UsageError(f"unknown folder dataset(s) {', '.join(unknown)} (from --folder or "
                                f"CLAIMBENCH_FOLDER_<NAME>); known: {', '.join(FOLDER_DATASETS)}")

    def announce(message: str) -> None:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        if tr is None:
            return
        if getattr(getattr(tr, "_tw", None), "width_of_current_line", 0):
            message = "\n" + message  # after a status letter (a failed claim keeps its F): a line of its own
        if capman is None:
            tr.write_line(message)
            return
        with capman.global_and_fixture_disabled():  # shown live, not in the captured output
            tr.write_line(message)

    worker = getattr(config, "workerinput", {})
    spec = (opt("--device") or os.environ.get("CLAIMBENCH_DEVICE") or "auto").strip().lower()
    if worker and device.type == "cuda" and spec in ("auto", "cuda") and torch.cuda.device_count() > 1:
        # pytest-xdist: worker gwK trains on the K-th visible GPU (an index into CUDA_VISIBLE_DEVICES)
        device = torch.device("cuda", int(worker["workerid"][2:]) % torch.cuda.device_count())
    elif worker and device.type == "cpu":  # N CPU workers share the cores instead of each taking all of them
        torch.set_num_threads(threads_per_worker(int(worker.get("workercount", 1))))
    if not worker and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    if not worker:  # garbage lines in the middle of the store are moved aside (named), the session goes on
        try:
            Store(Path(report_dir).expanduser() / "store").quarantine_damaged()
        except OSError as e:
            raise pytest.UsageError(f"the store in {report_dir} cannot be read or repaired: {e}") from None
    config.stash[STATE_KEY] = ClaimBench(
        profile=profile, seeds=seeds, device=device, device_name=device_name(device), device_chosen=spec != "auto",
        data_dir=Path(data_dir).expanduser().resolve() if data_dir else None,
        allow_download=bool(allow) or not (opt("--offline") or _env_flag("CLAIMBENCH_OFFLINE")),
        user_weights=bool(opt("--user-weights")) or _env_flag("CLAIMBENCH_USER_WEIGHTS"),
        report_dir=Path(report_dir).expanduser().resolve(), fresh=bool(opt("--fresh")), claims=claims,
        resume_commit=resume_commit,
        weights_file=Path(weights).expanduser().resolve() if weights else None, folders=folders,
        cache_dir=cache_dir, executor=executor, vary=vary,
        # a worker's lines go to the controller's terminal, where it made a folder for them
        announce=(workerlines.Folder.writer(worker[workerlines.WORKERINPUT_KEY], str(worker["workerid"]))
                  if worker.get(workerlines.WORKERINPUT_KEY) else announce),
        stack=stack == "on" or (stack == "auto" and device.type == "cuda"), precision=numerics,
        worker=str(worker.get("workerid", "")) if worker else "",
    )
    active = contextlib.ExitStack()  # the session's precision is the active one until pytest unconfigures
    active.enter_context(numerics.activate())
    config.stash[ACTIVE_KEY] = active


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[STATE_KEY]
    v = versions()
    seeds = (",".join(map(str, s.seeds)) + " (exploratory: decides nothing)" if s.seeds is not None
             else "confirmatory (drawn from each claim's rule identity)")
    return [
        f"claimbench: profile={s.profile.name} ({s.profile.description})",
        f"claimbench: device={s.device} [{s.device_name}] precision={s.precision.on(s.device)}"
        + (f" ({s.precision.note})" if s.precision.note else "") + f" seeds={seeds}",
        f"claimbench: torch {v['torch']}, torchvision {v['torchvision']}, CUDA {v['cuda']}, "
        f"numpy {v['numpy']}, python {v['python']}",
        f"claimbench: data-dir={s.data_dir or '(none)'} download={'on' if s.allow_download else 'off (offline)'} "
        f"report-dir={s.report_dir}",
        f"claimbench: weights={s.weights_file or '(none: torch hub cache or download)'} cache-dir={s.cache_dir}",
    ]


def _case_of(item: pytest.Item) -> Case | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for v in params.values():
        if isinstance(v, Case):
            return v
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    s = config.stash[STATE_KEY]
    keep, drop = [], []
    for item in items:
        case = _case_of(item)
        if case is None:  # not a claim (a speed benchmark): --claims selects claim tests only
            (drop if s.claims is not None else keep).append(item)
            continue
        if s.claims is not None and case.claim_id not in s.claims:
            drop.append(item)
            continue
        if s.vary != "all" and s.vary not in getattr(getattr(item, "module", None), "VARIES", ()):
            drop.append(item)  # this family's runs cannot hold the other sources fixed
            continue
        if case.budgets[s.profile.name].needs_cuda:
            item.add_marker(pytest.mark.gpu)
        claim = case.claim
        if is_data_claim(claim):  # the Family record says which claims read a dataset or are slow
            item.add_marker(pytest.mark.data)
        if is_slow_claim(claim):
            item.add_marker(pytest.mark.slow)
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep



def pytest_collection_finish(session: pytest.Session) -> None:
    s = session.config.stash.get(STATE_KEY, None)
    if s is not None:  # after every deselection (-k, -m, --claims)
        s.planned = sum(_case_of(item) is not None for item in session.items)
        if s.profile.name == "full" and s.planned and not _xdist_worker(session.config):
            from harness.estimate import family_estimates

            fams = {c.claim.family for c in map(_case_of, session.items) if c is not None}
            s.announce(f"claimbench: estimated cost of the full profile on {s.device_name} (FLOP counter, "
                       f"30% of the device's dense peak):")
            for line in family_estimates(s.device_name, fams):
                s.announce("  " + line)
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if s.planned and tr is not None and not os.environ.get("CI") and session.config.get_verbosity() <= 0:
            tr.showfspath = False  # each claim line names its claim; pytest would re-print the file before each


def pytest_runtest_setup(item: pytest.Item) -> None:
    s = item.config.stash.get(STATE_KEY, None)
    if s is not None:
        s.current_test = item.nodeid


RELAY = "claimbench_line"  # the user property that carries a worker's claim line to the xdist controller


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """pytest-xdist, on a worker: the claim line of the claim this test just finished rides on its report."""
    outcome = yield
    s = item.config.stash.get(STATE_KEY, None)
    if s is not None and s.worker and s.relay is not None:
        relay = {**s.relay, "workers": int(item.config.workerinput.get("workercount", 1))}
        rep = outcome.get_result()  # a list of its own: pytest hands the item's list to every phase's report
        rep.user_properties = [*rep.user_properties, (RELAY, json.dumps(relay))]
        s.relay = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """pytest-xdist, on the controller: print a worker's claim line as the claim finishes (before pytest's
    status for it, which the line then replaces as in a run without workers)."""
    relays = [v for k, v in getattr(report, "user_properties", ()) if k == RELAY]
    node = getattr(report, "node", None)  # set by xdist on the reports it relays from a worker
    s = node.config.stash.get(STATE_KEY, None) if node is not None else None
    if not relays or s is None or s.worker:
        return
    if s.worker_lines is not None:  # the claim's run lines first
        s.worker_lines.drain(s.announce)
    for relay in relays:
        s.announce(s.relayed_line(json.loads(relay)))
    s.lined.add(report.nodeid)


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """A claim whose line already said its outcome gets no status letter after it (a letter alone on the next
    line broke the screen); failures keep theirs."""
    s = config.stash.get(STATE_KEY, None)
    if (s is None or report.nodeid not in s.lined or report.failed or report.when != "call"
            or config.get_verbosity() > 0):
        return None
    # no letter, but the word pytest's short summary (-rs, -rx) prints before each line, as its own
    if hasattr(report, "wasxfail"):  # an inconclusive claim: pytest counts (and summarises) it as xfailed
        return ("xfailed", "", "XFAIL") if report.skipped else ("xpassed", "", "XPASS")
    return ("skipped", "", "SKIPPED") if report.skipped else ("passed", "", "PASSED")


@pytest.fixture(scope="session")
def claimbench(pytestconfig: pytest.Config) -> ClaimBench:
    return pytestconfig.stash[STATE_KEY]


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    s = config.stash.get(STATE_KEY, None)
    if s is None or not s.session_verdicts:
        return
    tr = terminalreporter
    tr.section(f"claimbench verdicts (profile {s.profile.name}, {s.device_name})")
    width = max(len(f"{r['claim_id']}-{r['variant']}") for r in s.session_verdicts)
    for r in s.session_verdicts:
        name = f"{r['claim_id']}-{r['variant']}" if r["variant"] else r["claim_id"]
        label = outcome_label(r) + (f" ({r['not_run_reason']})" if r["verdict"] == NOT_RUN else "")
        if r.get("exploratory"):
            label = f"exploratory ({label})"
        tr.write_line(f"{name:<{width}}  {label:<22} ours: {r['ours']}   posts: {r['posts_value']}")
    ran = {r["claim_id"] for r in s.session_verdicts}
    elsewhere = [cid for cid in CATALOGUE if cid not in ran]  # not collected, deselected (--claims, -k) or untested
    if elsewhere:
        tr.write_line(f"not run in this session (not selected, or no test collected): {', '.join(elsewhere)}")
    if s.report_error:
        tr.write_line(f"claimbench: {s.report_error}", red=True)
    else:
        tr.write_line(f"report: {s.report_dir / 'README.md'}")
    if s.comparison:
        n = {k: sum(r["status"] == k for r in s.comparison) for k in ("agrees", "differs", "unpublished")}
        tr.write_line(f"compared with the published report: {n['agrees']} agree, {n['differs']} differ, "
                      f"{n['unpublished']} not published at this profile "
                      f"({s.report_dir / 'comparison.md'})", yellow=bool(n["differs"]))
        for r in s.comparison:
            if r["status"] == "differs":
                name = r["claim_id"] + (f"-{r['variant']}" if r["variant"] else "")
                tr.write_line(f"  differs: {name}: yours {worded(r['mine'], r['analogue'])} ({r['mine_ours']}), "
                              f"published {worded(r['published'], r['analogue'])} ({r['published_ours']})")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Training bars go through the terminal reporter with capture suspended (pytest's own way of showing
    live lines), when the session has a terminal and is not CI."""
    config = session.config
    capman = config.pluginmanager.get_plugin("capturemanager")
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or not tr.isatty() or os.environ.get("CI"):
        return

    def progress_sink(text: str) -> None:
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            tr.write(text, flush=True)

    progress.set_sink(progress_sink)


def pytest_unconfigure(config: pytest.Config) -> None:
    progress.set_sink(None)
    memo.clear()  # the next session in this process loads its own data
    active = config.stash.get(ACTIVE_KEY, None)
    if active is not None:
        active.close()
    s = config.stash.get(STATE_KEY, None)
    if s is not None and s.worker_lines is not None:  # a session that ended before its finish (an error)
        s.worker_lines.close()
    if s is not None and s.executor is not None:
        s.executor.close()


def _xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


WORKER_LINES_EVERY_S = 2.0  # how often the controller shows what the workers wrote


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist, on the controller, for each worker it starts: the folder where the worker writes the lines
    it would print (runs trained, a claim's notices), which the controller shows as they come. Off under CI,
    like the claim lines."""
    s = node.config.stash.get(STATE_KEY, None)
    if s is None or os.environ.get("CI"):
        return
    if s.worker_lines is None:
        try:
            s.worker_lines = workerlines.Folder()
        except OSError as e:  # no temporary folder (a full disk): the claims run, only the run lines are not shown
            who = node.workerinput.get("workerid", "a worker")
            s.announce(f"claimbench: {who}'s run lines will not be shown (no temporary folder: {e})")
            return
        s.worker_lines.follow(s.announce, every_s=WORKER_LINES_EVERY_S)
    node.workerinput[workerlines.WORKERINPUT_KEY] = str(s.worker_lines.root)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """pytest-xdist, on the controller, in place of its default ``--dist load``: the claims costliest first by
    the published runs' times, claims that share runs on one worker (``harness.schedule``). Other ``--dist``
    modes, and a profile without published verdicts, stay xdist's."""
    s = config.stash.get(STATE_KEY, None)
    if s is None or config.getvalue("dist") != "load":
        return None
    from harness.schedule import make_scheduler, plan

    try:
        p = plan(Store(PUBLISHED / "store").iter_records(), s.profile.name)
    except (OSError, StoreCorruptError) as e:
        s.announce(f"claimbench: claims handed to the workers in file order (published store unreadable: {e})")
        return None
    if not p.unit_s:
        return None
    s.announce(f"claimbench: claims handed to the workers costliest first, by the published {s.profile.name} "
               f"runs' times ({len(p.unit_s)} groups of claims that share runs or stand alone)")
    s.scheduler = make_scheduler(config, log, p)
    return s.scheduler


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist, on the controller: a worker finished; take over its verdicts, so the
    verdict summary and the one report build happen here, once every worker is done."""
    s = node.config.stash.get(STATE_KEY, None)
    out = getattr(node, "workeroutput", None) or {}
    if s is None or "claimbench" not in out:
        return
    got = json.loads(out["claimbench"])
    s.session_verdicts.extend(got["verdicts"])
    s.stored_elsewhere = s.stored_elsewhere or got["stored"]


def _compare_with_published(s: "ClaimBench") -> None:
    """The user's verdicts beside the published ones, claim by claim (terminal summary and comparison.md)."""
    from harness.compare import against_published, render_against_published

    published = Store(PUBLISHED / "store")
    if not published.path.exists():
        return
    try:
        rows = against_published(s.store.records(), published.records())
    except (OSError, LookupError, StoreCorruptError) as e:
        s.report_error = f"could not compare with the published report ({e})"
        return
    if rows:
        (s.report_dir / "comparison.md").write_text(render_against_published(rows, "reports/"))
    s.comparison = rows


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    s = session.config.stash.get(STATE_KEY, None)
    if s is None:
        return
    if _xdist_worker(session.config):  # a worker hands its verdicts to the controller and writes no report
        session.config.workeroutput["claimbench"] = json.dumps(
            {"verdicts": s.session_verdicts, "stored": bool(s.session_runs)}, default=str)
        return
    if s.worker_lines is not None:  # every worker is done: what they wrote last, then no more lines
        s.worker_lines.close(s.announce)
        s.worker_lines = None
    if not (s.session_verdicts or s.session_runs or s.stored_elsewhere):  # (--vary stores runs, no verdicts)
        return
    try:
        report_mod.build(s.report_dir / "store", s.report_dir)
        if s.report_dir.resolve() != PUBLISHED.resolve() and s.profile.gives_verdicts:
            _compare_with_published(s)
    except (OSError, LookupError, report_mod.StoreCorruptError) as e:
        # every stored run and verdict is kept; the previous report stays whole (pages are swapped in whole)
        s.report_error = f"the report in {s.report_dir} was not rebuilt: {e}. Nothing stored was lost; " \
                         f"rebuild it with `python -m harness.report --report-dir {s.report_dir}` once the cause " \
                         "is fixed."

