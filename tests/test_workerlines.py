"""The lines of pytest-xdist workers reach the controller: whole lines, each once, in order, and nothing is
raised when the controller's folder is already gone."""
import threading
import time

from harness.workerlines import Folder


def test_a_drain_shows_each_complete_line_once_and_a_partial_one_later(tmp_path):
    folder = Folder(tmp_path / "lines")
    folder.root.mkdir()
    write = Folder.writer(folder.root, "gw0")
    write("run 1 trained")
    write("two\nlines")
    shown = []
    assert folder.drain(shown.append) == 3
    assert shown == ["gw0: run 1 trained", "gw0: two", "gw0: lines"]
    with open(folder.root / "gw1.log", "a") as f:
        f.write("gw1: half a li")  # a line being written: not shown until its newline arrives
    assert folder.drain(shown.append) == 0
    with open(folder.root / "gw1.log", "a") as f:
        f.write("ne\n")
    write("run 2 trained")
    folder.drain(shown.append)
    assert shown[3:] == ["gw0: run 2 trained", "gw1: half a line"]
    folder.close()
    assert not folder.root.exists()
    write("after the controller finished")  # the worker goes on; the line has nowhere to go, and that is all


def test_follow_shows_lines_while_the_worker_is_still_writing(tmp_path):
    folder = Folder()
    got, arrived = [], threading.Event()

    def show(line):
        got.append(line)
        arrived.set()

    folder.follow(show, every_s=0.05)
    Folder.writer(folder.root, "gw3")("run 7 trained")
    assert arrived.wait(10), "the poller showed nothing"
    assert got == ["gw3: run 7 trained"]
    Folder.writer(folder.root, "gw3")("the last one")
    folder.close(show)  # what is left is shown on close, once
    time.sleep(0.2)
    assert got == ["gw3: run 7 trained", "gw3: the last one"]
    assert not folder.root.exists()


def test_no_temporary_folder_costs_the_run_lines_only(monkeypatch):
    """A full disk where the controller makes its folder: the worker starts without the lines, and says so."""
    from types import SimpleNamespace

    from harness import plugin, workerlines

    said = []
    s = SimpleNamespace(worker_lines=None, announce=said.append)
    node = SimpleNamespace(config=SimpleNamespace(stash={plugin.STATE_KEY: s}), workerinput={"workerid": "gw0"})

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(workerlines, "Folder", full_disk)
    plugin.pytest_configure_node(node)
    assert workerlines.WORKERINPUT_KEY not in node.workerinput and s.worker_lines is None
    assert said == ["claimbench: gw0's run lines will not be shown (no temporary folder: [Errno 28] No space left "
                    "on device)"]
