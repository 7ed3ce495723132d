"""``vbayes vae`` / ``vbayes ae`` end to end on the small digits set, and their bad-input paths."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest

from vbayes.cli import main
from vbayes.cli.runs import MARKER

FAST = ["--data", "digits", "--hidden", "32", "--batch-size", "64", "--no-progress"]
FIGURES = {"reconstructions", "samples", "latent_map", "manifold", "blending", "training_curves"}


def _files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*")}


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    code = main(["vae", *FAST, "--epochs", "2", "--latent", "2", "--iw-samples", "40", "--out", str(out)])
    assert code == 0
    return out


def test_vae_run_writes_every_file(vae_run):
    files = _files(vae_run)
    for name in ("config.json", "metrics.json", "checkpoint.pt", "log.csv", "report.html"):
        assert name in files
    assert {f"figures/{n}.png" for n in FIGURES} <= files
    assert not any(".staging" in f or f.endswith(".tmp") for f in files)
    with open(vae_run / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    html = (vae_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)
    assert "test_nll" in html and "Configuration" in html


def test_vae_metrics_are_consistent(vae_run):
    m = json.loads((vae_run / "metrics.json").read_text())
    assert m["test_elbo"] < 0 < m["test_nll"]
    # IWAE bound >= ELBO (both estimated; the ELBO from 10 draws per example, so allow its noise)
    assert -m["test_nll"] >= m["test_elbo"] - 0.5
    assert m["iw_samples"] == 40 and m["epochs"] == 2 and m["train_examples"] == 1258
    assert m["test_examples"] == 360 and m["seconds_per_epoch"] > 0
    assert m["test_kl"] >= 0 and m["test_recon_nll"] > 0


def test_config_repeats_the_run_exactly(vae_run, tmp_path):
    config = json.loads((vae_run / "config.json").read_text())
    argv = shlex.split(config["command"])
    assert argv[:2] == ["vbayes", "vae"]
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    assert main([*argv[1:], "--no-progress"]) == 0
    first = json.loads((vae_run / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    timing = {"seconds_per_epoch", "eval_seconds"}
    assert {k: v for k, v in first.items() if k not in timing} == {k: v for k, v in second.items() if k not in timing}


def test_ae_run_with_larger_latent(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["ae", *FAST, "--epochs", "1", "--latent", "3", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["test_recon_nll"] > 0 and "test_nll" not in m and "test_elbo" not in m
    figures = {p.stem for p in (out / "figures").iterdir()}
    assert figures == {"reconstructions", "latent_map", "blending", "training_curves"}  # no prior, no 2-D grid
    assert "PCA" in (out / "report.html").read_text()
    assert "report:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "nope"], "unknown data set 'nope'"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--latent", "-1"], "--latent"),
        (["--lr", "nan"], "--lr"),
        (["--data", "mnist", "--data-dir", "EMPTY"], "train-images-idx3-ubyte"),
        (["--gaussian-std", "0.1"], "--gaussian-std needs --likelihood gaussian"),
        (["--device", "tpu9"], "--device"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [a if a != "EMPTY" else str(tmp_path) for a in argv]
    try:
        code = main(["vae", "--data", "digits", "--no-progress", *argv, "--out", str(out)])
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_argparse_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["vae", "--epochs", "0", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "--epochs" in capsys.readouterr().err


def test_unwritable_out_and_existing_run(tmp_path, capsys, vae_run):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["vae", *FAST, "--epochs", "1", "--out", str(blocker / "sub")]) == 2
    assert "cannot be written" in capsys.readouterr().err
    before = {p: p.stat().st_mtime_ns for p in vae_run.rglob("*")}
    assert main(["vae", *FAST, "--epochs", "1", "--out", str(vae_run)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in vae_run.rglob("*")} == before


def test_failure_mid_run_leaves_nothing_half_written(tmp_path, monkeypatch, capsys):
    import vbayes.studies.autoencoders.vae_report
    import vbayes.studies.autoencoders.vae_run
    from vbayes.errors import VBayesError

    def broken(*args, **kwargs):
        raise VBayesError("simulated failure while writing the report")

    monkeypatch.setattr(vbayes.studies.autoencoders.vae_report, "write_autoencoder_report", broken)
    fresh = tmp_path / "fresh"
    assert main(["ae", *FAST, "--epochs", "1", "--out", str(fresh)]) == 2
    assert _files(fresh) == {"last.pt", MARKER}  # only the last good epoch, to --resume from
    old = tmp_path / "old"
    old.mkdir()
    (old / MARKER).write_text("")  # a previous vbayes run
    (old / "config.json").write_text("{}")
    (old / "metrics.json").write_text('{"old": true}')
    (old / "last.pt").write_text("old")
    assert main(["ae", *FAST, "--epochs", "1", "--overwrite", "--out", str(old)]) == 2
    # the previous run is untouched; the failed one's last epoch waits in its staging folder
    [staging] = old.glob(".staging-*")
    assert _files(old) == {"config.json", "metrics.json", "last.pt", MARKER, staging.name, f"{staging.name}/last.pt"}
    assert json.loads((old / "metrics.json").read_text()) == {"old": True}
    assert (old / "last.pt").read_text() == "old"
    assert "simulated failure" in capsys.readouterr().err
    # a failure before the first epoch ends leaves nothing at all
    monkeypatch.setattr(vbayes.studies.autoencoders.vae_run, "ae_loss_fn", broken)
    fresh = tmp_path / "fresh2"
    assert main(["ae", *FAST, "--epochs", "1", "--out", str(fresh)]) == 2
    assert not fresh.exists()
