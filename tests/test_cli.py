"""The command line: run, plugins, start-up cost, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from czsl.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_prints_table_and_where_results_went(tmp_path, capsys):
    code, out, err = _run(capsys, "run", "--runs-dir", str(tmp_path), "--no-progress",
                          "--set", "train.epochs=1", "--set", "data.synthesis.samples_per_class=20",
                          "--name", "cli-test")
    assert code == 0, err
    assert any(line.split() == ["step", "SA", "UA", "H", "JA", "forgetting"]
               for line in out.splitlines())
    for word in ("mSA", "mUA", "mH", "results:"):
        assert word in out
    results = json.loads((tmp_path / "cli-test" / "results.json").read_text())
    assert results["name"] == "cli-test" and len(results["metrics"]["steps"]["H"]) == 5
    assert str(tmp_path / "cli-test" / "results.json") in out


def test_threads_sets_torchs_cpu_threads(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        want = 1 if before != 1 else 2
        code, _, err = _run(capsys, "run", "--runs-dir", str(tmp_path), "--no-progress",
                            "--threads", str(want), "--set", "train.epochs=1",
                            "--set", "data.synthesis.samples_per_class=10")
        assert code == 0, err
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit) as info:
        main(["run", "--threads", "0"])
    assert info.value.code == 2
    assert "--threads: expected a positive whole number, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--set", "regularizer=ewc_onlin"], ["unknown regularizer 'ewc_onlin'", "none"]),
    (["--set", "model.hiden_dims=[4]"], ["does not take the option 'hiden_dims'",
                                         "[model] table"]),
    (["--set", "train.epochs=-1"], ["train.epochs", "positive"]),
    (["--set", "data.dataset=CUB"], ["CUB", "data_dir", "CUB_meta.npz"]),
    (["--device", "cuda"], ["cuda"]),
])
def test_user_errors_exit_2_with_one_clear_line_and_no_run_folder(tmp_path, capsys, argv,
                                                                 words):
    if "cuda" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    code, out, err = _run(capsys, "run", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                          *argv)
    assert code == 2
    assert err.startswith("czsl: error: ") and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_help_and_plugins_do_not_import_torch():
    for argv in (["--help"], ["plugins"], ["run", "--help"]):
        code = (f"import sys; from czsl.cli import main\n"
                f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
                "assert 'torch' not in sys.modules, 'torch imported'\n"
                "assert 'avalanche' not in sys.modules, 'avalanche imported'\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=False)
        assert out.returncode == 0, (argv, out.stderr)


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "czsl.cli", "plugins"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0 and "attribute_embedder" in out.stdout


@pytest.mark.parametrize("argv", [["run", "--threads", "x"],
                                  ["sweep", "run", "grid.toml", "--jobs", "0"],
                                  ["sweep", "run", "grid.toml", "--threads-per-run", "-1"]])
def test_counts_are_checked_alike_by_czsl_and_czsl_sweep(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert f"{argv[-2]}: expected a positive whole number, got {argv[-1]!r}" in (
        capsys.readouterr().err)
