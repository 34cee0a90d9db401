import subprocess

import pytest

from culteval.provenance import git_info


def _git(root, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "init")
    return tmp_path


def test_clean_checkout_is_not_dirty(repo):
    info = git_info(repo)
    assert len(info["commit"]) == 40 and info["dirty"] is False


def test_dvc_lock_rewritten_by_dvc_repro_does_not_count_as_dirty(repo):
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    assert git_info(repo)["dirty"] is False


def test_modified_code_is_dirty(repo):
    (repo / "code.py").write_text("x = 2\n")
    assert git_info(repo)["dirty"] is True
