"""Every committed ``gradcon reproduce`` folder regenerates byte for byte with ``--report-only``."""

import filecmp
import glob
import os
import re
import shlex
import shutil

import pytest

from gradcon_tf import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reproduce_folders():
    """(folder relative to the repository, the command its README gives) of each results folder."""
    found = []
    for readme in sorted(glob.glob(os.path.join(ROOT, "docs", "results", "**", "README.md"),
                                   recursive=True)):
        folder = os.path.relpath(os.path.dirname(readme), ROOT)
        match = re.search(rf"^(gradcon reproduce .*--out {re.escape(folder)}(?: .*)?)$",
                          open(readme).read(), re.MULTILINE)
        if match:
            found.append((folder, match.group(1)))
    return found


@pytest.mark.slow  # about 2 minutes
@pytest.mark.parametrize("folder, command", reproduce_folders())
def test_the_report_regenerates_byte_for_byte(folder, command, tmp_path, monkeypatch):
    copy = tmp_path / folder
    shutil.copytree(os.path.join(ROOT, folder), copy)
    monkeypatch.chdir(tmp_path)  # the command's --out is relative to the repository
    args = cli.build_parser().parse_args([*shlex.split(command)[1:], "--report-only"])
    assert args.command_module.run(args) == 0  # no checks before: the data is not read
    comparison = filecmp.dircmp(os.path.join(ROOT, folder), copy)
    changed = [name for name in comparison.common_files
               if not filecmp.cmp(os.path.join(ROOT, folder, name), copy / name, shallow=False)]
    assert not changed and not comparison.right_only, (changed, comparison.right_only)


def test_every_results_folder_with_runs_names_its_command():
    with_runs = {os.path.relpath(os.path.dirname(p), ROOT)
                 for p in glob.glob(os.path.join(ROOT, "docs", "results", "**", "runs"), recursive=True)}
    assert with_runs <= {folder for folder, _ in reproduce_folders()}
    assert len(with_runs) >= 10
