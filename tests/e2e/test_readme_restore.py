"""The README's Restore section, run as written: every ```sh block, in a scratch copy of the development
layout (etc/dev.toml, sample/, .venv) with the real daemon `make run` starts; the daemon is stopped before
the first block that reads the configuration itself (--config)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from daemon_harness import Daemon
from tests.archive.helpers import tree_state
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```sh\n(.*?)```", re.S)


def restore_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Restore\n"):]
    section = section[: section.index("\n## ", 1)]
    return BLOCK.findall(section)


def scratch_checkout(base: Path) -> Path:
    """etc/dev.toml, sample/ and .venv where `make run` has them."""
    root = base / "checkout"
    (root / "etc").mkdir(parents=True)
    shutil.copy(REPO / "etc" / "dev.toml", root / "etc" / "dev.toml")
    shutil.copytree(REPO / "sample", root / "sample", symlinks=True)
    os.symlink(sys.prefix, root / ".venv")
    return root


def run_block(root: Path, block: str) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "BACKUPD_SOCKET"}
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=root, env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"README block failed:\n{block}\n{done.stdout}{done.stderr}"


def test_the_readme_restore_commands_work_as_written(tmp_path):
    blocks = restore_blocks()
    assert len(blocks) == 4 and "--config" in blocks[1] and "zstd -dc" in blocks[3]
    root = scratch_checkout(tmp_path)
    daemon = Daemon(tmp_path, root / "etc" / "dev.toml", socket=root / "var" / "backupd.sock")
    daemon.start("--run-at-start")
    try:
        wait_for(lambda: daemon.ctl("--json", "history").stdout.count('"status": "success"'),
                 what="the first backup of `make run`")
        for block in blocks:
            if "--config" in block and daemon.proc is not None:
                assert daemon.stop() == 0
            run_block(root, block)
    finally:
        if daemon.proc is not None:
            daemon.stop()
    sample = tree_state(root / "sample")
    for target in ("restore", "restore-offline", "restore-file", "restore-plain"):
        assert tree_state(root / "var" / target / "sample") == sample, target
    assert (root / "var" / "restore" / "uname" / "uname.txt").read_text().startswith(os.uname().sysname)
    docs = tree_state(root / "var" / "restore-docs")
    notes = sorted(f"sample/docs/{name}" for name in os.listdir(REPO / "sample/docs"))
    assert sorted(docs) == ["sample", "sample/docs", *notes]
