"""Run directories never lose data: ownership (marker), locking, whole-run replacement, journalled commit.

Table-driven where it fits: a command, its exit status, its one stderr line, and the files that
must be exactly as they were afterwards (compared byte by byte). The fault-injection cases
(kills at random moments, concurrent runs, a crash at every step of the commit) run on tiny
data and finish in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vbayes import cli
from vbayes.cli import runs
from vbayes.studies.autoencoders import vae_report
from vbayes.cli.runs import MARKER, StagedRun, claim_out, recover_commit, release_out

AE = ["ae", "--data", "digits", "--hidden", "16", "--batch-size", "128", "--epochs", "1", "--no-progress"]
UQ = ["uq", "--data", "toy-gap", "--methods", "output", "--epochs", "1", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with a hash of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def main(argv: list[str], capsys: Any) -> tuple[int, str]:
    """``vbayes argv`` in this process: exit status and stderr."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vae_report, "autoencoder_figures", lambda run: [])


@pytest.fixture
def previous_run(tmp_path: Path, no_figures: None, capsys: Any) -> Path:
    """A finished ``vbayes ae`` run (with its last.pt)."""
    out = tmp_path / "previous"
    assert main([*AE, "--out", str(out)], capsys)[0] == 0
    assert (out / "last.pt").is_file() and (out / MARKER).is_file()
    return out


def _user_folder(root: Path) -> Path:
    """The user's own files, no vbayes run: they must never be touched."""
    root.mkdir()
    (root / "figures").mkdir()
    (root / "figures" / "mine.png").write_bytes(b"\x89PNG mine")
    (root / "report.html").write_text("<p>my report</p>")
    (root / "log.csv").write_text("my,log\n")
    return root


# ---------------------------------------------------------------------- refusals, table-driven
CASES = [
    # (name, argv after the command's own options, expected status, text of the one stderr line)
    ("foreign folder", [*AE, "--out", "{user}"], 2, "not a vbayes run"),
    ("foreign folder, --overwrite", [*AE, "--out", "{user}", "--overwrite"], 2, "not a vbayes run"),
    ("foreign folder, uq --overwrite", [*UQ, "--out", "{user}", "--overwrite"], 2, "not a vbayes run"),
    ("foreign folder, --resume", [*AE, "--out", "{user}", "--resume"], 2, "not a vbayes run"),
    ("previous run without --overwrite", [*AE, "--out", "{run}"], 2, "already holds a run"),
    ("uq onto a previous run", [*UQ, "--out", "{run}"], 2, "already holds a run"),
    ("empty --out", [*AE, "--out", ""], 2, "--out is empty"),
    ("empty --out, uq", [*UQ, "--out", ""], 2, "--out is empty"),
    ("uq --splits on a toy", [*UQ, "--out", "{new}", "--splits", "2"], 2, "--splits applies to --data uci only"),
]


@pytest.mark.parametrize(("argv", "status", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_runs_touch_nothing(
    argv: list[str], status: int, message: str, previous_run: Path, tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = _user_folder(tmp_path / "user")
    monkeypatch.chdir(tmp_path)  # `--out ""` would write here
    before = {d: snapshot(d) for d in (user, previous_run)}
    cwd_before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(user=user, run=previous_run, new=tmp_path / "new") for a in argv]
    code, err = main(argv, capsys)
    assert (code, err.count("\n")) == (status, 1) and message in err and "Traceback" not in err, err
    assert {d: snapshot(d) for d in (user, previous_run)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == cwd_before  # no new (or empty) --out left behind


def test_a_locked_out_is_refused_with_one_line(previous_run: Path, capsys: Any) -> None:
    """Another process holds the lock on the run directory: one line, exit 2, nothing touched."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)", str(previous_run / MARKER)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"  # type: ignore[union-attr]
        before = snapshot(previous_run)
        for argv in ([*AE, "--out", str(previous_run), "--overwrite"], [*AE, "--out", str(previous_run), "--resume"],
                     [*UQ, "--out", str(previous_run), "--overwrite"]):  # fmt: skip
            code, err = main(argv, capsys)
            assert code == 2 and err.count("\n") == 1 and "in use by another vbayes run" in err, err
        assert snapshot(previous_run) == before
    finally:
        holder.kill()
        holder.wait()


def test_two_runs_started_together_into_one_out(tmp_path: Path) -> None:
    """One of two concurrent fresh runs wins; the other gets one line and exit 2; the run is complete."""
    out = tmp_path / "conc"
    procs = [subprocess.Popen([sys.executable, "-m", "vbayes", *AE, "--seed", str(seed), "--out", str(out)],
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for seed in (0, 7)]  # fmt: skip
    results = sorted((p.wait(timeout=120), p.stderr.read()) for p in procs)  # type: ignore[union-attr]
    for p in procs:
        p.stderr.close()  # type: ignore[union-attr]
    assert [code for code, _ in results] == [0, 2], results
    err = results[1][1]
    assert err.count("\n") == 1 and ("in use by another vbayes run" in err or "already holds a run" in err), err
    assert {"config.json", "metrics.json", "checkpoint.pt", "last.pt", "log.csv", "report.html", MARKER} <= {
        p.name for p in out.iterdir()}
    assert not list(out.glob(".staging-*"))


# ---------------------------------------------------------------------- --overwrite replaces a whole run
def test_uq_overwrite_onto_an_ae_run_replaces_the_whole_run(previous_run: Path, capsys: Any) -> None:
    code, err = main([*UQ, "--out", str(previous_run), "--overwrite"], capsys)
    assert code == 0, err
    names = {p.name for p in previous_run.iterdir()}
    assert names == {"metrics.json", "report.html", MARKER} | ({"figures"} & names), names  # nothing of the ae run
    code, err = main(["resume", "--out", str(previous_run)], capsys)
    assert code == 2 and "nothing to resume" in err  # the old ae run cannot come back


def test_failing_report_of_an_overwrite_run_keeps_the_previous_run(
    previous_run: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vbayes.errors import VBayesError
    from vbayes.report import Report

    def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        raise VBayesError("simulated failure of the report step")

    monkeypatch.setattr(Report, "write", broken)
    before = snapshot(previous_run)
    code, err = main([*UQ, "--out", str(previous_run), "--overwrite"], capsys)
    assert code == 2 and "simulated failure" in err and err.count("\n") == 1
    after = snapshot(previous_run)
    assert {k: v for k, v in after.items() if not k.startswith(".staging-")} == before
    # the failed run's finished methods wait, hidden, for --resume
    assert any(k.startswith(".staging-") and "/.stages/" in k for k in after)


def test_sigint_during_uq_leaves_no_empty_out(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from vbayes.studies.uq import experiment

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_methods_in_stages", interrupted)
    code, err = main([*UQ, "--out", str(tmp_path / "uq")], capsys)
    assert code == 130 and "interrupted" in err
    assert not (tmp_path / "uq").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*UQ, "--out", str(empty)], capsys)[0] == 130
    assert list(empty.iterdir()) == []  # as it was
    monkeypatch.undo()
    from vbayes.studies.uq import stages

    monkeypatch.setattr(stages, "run_methods", interrupted)  # in the first method: its stage folder exists
    assert main([*UQ, "--out", str(tmp_path / "uq")], capsys)[0] == 130
    assert not (tmp_path / "uq").exists()


# ---------------------------------------------------------------------- the commit journal
def _staged_run(out: Path, label: str) -> StagedRun:
    run = StagedRun(out).__enter__()
    (run.staging / "metrics.json").write_text(json.dumps({"run": label}))
    (run.staging / "last.pt").write_text(label)
    (run.staging / "figures").mkdir()
    (run.staging / "figures" / f"{label}.png").write_text(label)
    return run


def test_a_crash_at_any_step_of_the_commit_recovers_to_the_whole_new_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.replace`` fails at its k-th call inside the commit (a kill there); recovery rolls forward."""
    reference = tmp_path / "reference"
    reference.mkdir()
    _staged_run(reference, "old").commit()
    _staged_run(reference, "new").commit()
    want = snapshot(reference)
    assert json.loads((reference / "metrics.json").read_text()) == {"run": "new"}
    for k in range(12):
        out = tmp_path / f"k{k}"
        out.mkdir()
        _staged_run(out, "old").commit()
        (out / "old-only.txt").write_text("a file of the previous run only")
        run = _staged_run(out, "new")
        calls = [0]
        real = os.replace

        def flaky(src: Any, dst: Any) -> None:
            calls[0] += 1
            if calls[0] == k + 1:
                raise OSError("simulated kill")
            real(src, dst)

        monkeypatch.setattr(runs.os, "replace", flaky)
        try:
            run.commit()
            finished = True
        except OSError:
            finished = False
        monkeypatch.setattr(runs.os, "replace", real)
        recover_commit(out)
        assert snapshot(out) == want, (k, finished)
    assert finished  # the last k is past every step


def test_sigkill_at_random_moments_of_an_overwrite_run(previous_run: Path, capsys: Any) -> None:
    """Killed anywhere (start-up, training, report, commit): afterwards ``--out`` holds either the
    whole previous run, byte for byte, or the whole new one; a later run can always continue."""
    before = snapshot(previous_run)
    rng = random.Random(10)
    outcomes = set()
    for moment in ("report", "random", "random"):
        child = subprocess.Popen([sys.executable, "-m", "vbayes", *AE, "--seed", "1", "--overwrite",
                                  "--out", str(previous_run)], env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:  # "report": as soon as the metrics are staged; else a random moment after training started
            pattern = ".staging-*/metrics.json" if moment == "report" else ".staging-*"
            deadline = time.monotonic() + 120
            while not list(previous_run.glob(pattern)) and child.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 2.0) if moment == "random" else 0.0)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        claim_out(previous_run)  # what the next run does first: finish an interrupted commit
        release_out(previous_run)
        now = {k: v for k, v in snapshot(previous_run).items() if not k.startswith(".staging-")}
        if now == before:
            outcomes.add("previous")
            continue
        assert moment != "report", "a kill during the report phase replaced the previous run"
        config = json.loads((previous_run / "config.json").read_text())
        assert "--seed 1" in config["command"]
        assert {"config.json", "metrics.json", "checkpoint.pt", "last.pt", "log.csv", "report.html"} <= set(now)
        outcomes.add("new")
        break  # the previous run is gone now, by design
    assert outcomes


# ---------------------------------------------------------------------- runs in stages resume
def _interrupt_vae_at(step: int) -> Any:
    from vbayes import vae_run

    real = vae_run.vae_loss_fn

    def make(options: Any) -> Any:
        inner = real(options)

        def loss_fn(model: Any, batch: Any, ctx: Any) -> Any:
            if ctx.training and ctx.step == step:
                raise KeyboardInterrupt
            return inner(model, batch, ctx)

        return loss_fn

    return make


COMPARE_EPOCHS = 2
COMPARE = ["compare-ae", "--data", "digits", "--hidden", "16", "--epochs", str(COMPARE_EPOCHS), "--batch-size",
           "128", "--samples", "3", "--search-samples", "3", "--search-inputs", "40", "--iw-samples", "3",
           "--no-progress"]  # fmt: skip


def test_compare_ae_interrupted_in_its_vae_phase_keeps_the_ae_and_resumes(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vbayes import vae_run

    out = tmp_path / "cmp"
    with monkeypatch.context() as patch:
        patch.setattr(vae_run, "vae_loss_fn", _interrupt_vae_at(12))  # epoch 2 of the VAE (10 steps per epoch)
        code, err = main([*COMPARE, "--out", str(out)], capsys)
    assert code == 130 and "interrupted" in err
    [staging] = out.glob(".staging-*")
    assert (staging / "ae" / "last.pt").is_file() and (staging / "vae" / "last.pt").is_file()
    ae_before = snapshot(staging / "ae")
    code, err = main([*COMPARE, "--out", str(out)], capsys)  # a forgotten --resume is refused
    assert code == 2 and "unfinished run" in err
    trained = []
    real = vae_run.Trainer.fit

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        trained.append(result.epochs_run)
        return result

    monkeypatch.setattr(vae_run.Trainer, "fit", counting)
    assert cli.main(["resume", "--out", str(out)]) == 0
    assert "--resume" in capsys.readouterr().out
    assert not list(out.glob(".staging-*"))
    assert {"ae", "vae", "bae", "metrics.json", "report.html", MARKER} <= {p.name for p in out.iterdir()}
    assert not (out / "resume.json").exists() and not (out / ".stages").exists()
    assert snapshot(out / "ae") == ae_before  # the finished AE was kept, not trained again
    assert trained == [COMPARE_EPOCHS] * 3  # every trainer ends at the full epoch count
    assert json.loads((out / "metrics.json").read_text())["ae"]["knn_accuracy"] >= 0


@pytest.mark.parametrize("data", ["toy-gap", "uci"])
def test_uq_interrupted_keeps_finished_methods_and_resumes(
    data: str, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the 2nd stage (toy: 2nd method; UCI: split 1): resume fits only what was left."""
    from test_uci import write_layout
    from vbayes.studies.uq import stages

    argv = ["uq", "--data", data, "--methods", "output,dropout", "--epochs", "2", "--no-progress"]
    if data == "uci":
        (tmp_path / "uci").mkdir()
        argv += ["--data-dir", str(write_layout(tmp_path / "uci")), "--splits", "2"]
    out = tmp_path / "uq"
    real = stages.run_methods
    fitted: list[tuple[str, str]] = []

    def counting(methods: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        fitted.append((data.name, methods[0]))
        if len(fitted) == 2 and interrupt:
            raise KeyboardInterrupt
        return real(methods, data, *args, **kwargs)

    monkeypatch.setattr(stages, "run_methods", counting)
    interrupt = True
    code, err = main([*argv, "--out", str(out)], capsys)
    assert code == 130 and "interrupted" in err
    [staging] = out.glob(".staging-*")
    assert len(list((staging / runs.STAGES).glob("*.pt"))) == 1
    assert main([*argv, "--out", str(out)], capsys)[0] == 2  # a forgotten --resume is refused
    interrupt = False
    assert cli.main(["resume", "--out", str(out)]) == 0
    capsys.readouterr()
    stages_run = 4 if data == "uci" else 2
    assert len(fitted) == stages_run + 1 and fitted[2] == fitted[1]  # the first stage was not fitted again
    assert not list(out.glob(".staging-*")) and not (out / runs.STAGES).exists()
    assert set(json.loads((out / "metrics.json").read_text())) == {"output", "dropout"}


def test_demo_interrupted_in_its_uq_part_keeps_models_and_methods(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vbayes.data
    from vbayes.cli.commands import demo
    from vbayes.studies.uq import stages

    real_load = vbayes.data.load
    monkeypatch.setattr(vbayes.data, "load",
                        lambda name, **kw: real_load("digits" if name == "mnist5k" else name, **kw))
    monkeypatch.setattr(demo, "DEMO_METHODS", ("output", "dropout"))
    real = stages.run_methods
    fitted: list[str] = []

    def counting(methods: Any, *args: Any, **kwargs: Any) -> Any:
        fitted.append(methods[0])
        if len(fitted) == 2 and interrupt:
            raise KeyboardInterrupt
        return real(methods, *args, **kwargs)

    monkeypatch.setattr(stages, "run_methods", counting)
    interrupt = True
    out = tmp_path / "demo"
    code, err = main(["demo", "--epochs", "1", "--no-progress", "--out", str(out)], capsys)
    assert code == 130, err
    [staging] = out.glob(".staging-*")
    models = {key: snapshot(staging / key) for key in ("ae", "vae", "bae")}
    interrupt = False
    assert cli.main(["resume", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert fitted == ["output", "dropout", "dropout"]
    assert {key: snapshot(out / key) for key in ("ae", "vae", "bae")} == models  # not trained again
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["uncertainty"]) == {"output", "dropout"}
    stages = {k.strip(): v for k, v in metrics["stage_seconds"].items()}  # each stage's time, printed too
    assert set(stages) == {"auto-encoders", "inference methods", "output (fit)", "dropout (fit)"}
    assert all(v >= 0 for v in stages.values()) and "stages: auto-encoders" in printed


def test_sigint_at_random_moments_of_uq_then_resume(tmp_path: Path, capsys: Any) -> None:
    """Ctrl-C at a random moment of a real ``vbayes uq --overwrite`` process (after start-up): exit
    130 (or 0 when too late), one line, and the previous run untouched or a run that ``vbayes
    resume`` completes."""
    out = tmp_path / "uq"
    argv = ["uq", "--data", "toy-gap", "--methods", "output,dropout", "--epochs", "2", "--no-progress"]
    assert main([*argv, "--out", str(out)], capsys)[0] == 0  # a previous run to overwrite
    rng = random.Random(3)
    for _ in range(2):
        child = subprocess.Popen([sys.executable, "-m", "vbayes", *argv, "--out", str(out), "--overwrite"], env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while not list(out.glob(".staging-*")) and child.poll() is None:  # the run has started staging
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 1.5))
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=60)
        err = child.stderr.read()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
        # 130, or killed by the SIGINT itself after the message (CPython re-raises it at exit when the
        # interrupt landed in code it ran through PyRun_*): the shell reports 130 for both
        assert code in (0, 130, -signal.SIGINT) and "Traceback" not in err, err
        if code != 0:
            assert err.count("\n") == 1 and "interrupted" in err, err
        if runs.find_stages(out) is not None:
            assert cli.main(["resume", "--out", str(out)]) == 0
        assert set(json.loads((out / "metrics.json").read_text())) == {"output", "dropout"}
        assert not list(out.glob(".staging-*"))
    capsys.readouterr()
