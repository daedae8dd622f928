"""The python source: a fresh object per run in a child process, its files and tables archived, every failure
one line of category `source`; through the real writer, child processes and the real `zstd`/`tar` CLIs."""
from __future__ import annotations

import csv
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from backupd.cancel import CancelToken, Cancelled
from backupd.sources.base import SourceError
from backupd.sources.python import PythonSource
from tests.archive.helpers import extract, read_manifest, source_config, write_archive
from tests.sources.test_command import process_alive
from tests.waiting import wait_for


def app(tmp_path: Path, code: str, module: str = "myapp_state") -> Path:
    """An application folder holding `module`.py with `code`."""
    folder = tmp_path / "app"
    folder.mkdir(exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(code))
    return folder


def source(folder: Path, factory: str = "myapp_state:State", **options) -> PythonSource:
    return PythonSource(source_config("state", "python", factory=factory, path=(folder,), **options))


def backup(tmp_path: Path, python_source: PythonSource, run: str = "run"):
    archive = tmp_path / f"{run}.tar.zst.tmp"
    stats = write_archive(archive, [python_source], tmp_path / f"{run}-work")
    return extract(archive, tmp_path / f"{run}-restored") / python_source.name, stats


def failure(tmp_path: Path, code: str, **options) -> str:
    """The one-line message of a run of `code`'s State that fails."""
    with pytest.raises(SourceError) as caught:
        backup(tmp_path, source(app(tmp_path, code), **options))
    message = str(caught.value)
    assert "\n" not in message, message
    return message


COUNTING = """
    import os, sys
    from pathlib import Path

    class State:
        constructed = 0                     # in this process

        def __init__(self):
            State.constructed += 1
            log = Path(os.environ["CONSTRUCTIONS"])
            with log.open("a") as out:      # across runs
                out.write(f"{os.getpid()}\\n")
            self.rows = []

        def dump(self, folder):
            self.rows.append(["run", len(Path(os.environ["CONSTRUCTIONS"]).read_text().split())])
            (folder / "state.txt").write_text(f"constructed={State.constructed} rows={len(self.rows)}")
            (folder / "where.txt").write_text(f"{os.getcwd()}|{sys.flags.isolated}|{os.environ['TMPDIR']}")
"""


def test_three_runs_make_three_fresh_objects(tmp_path):
    log = tmp_path / "constructions.log"
    folder = app(tmp_path, COUNTING)
    for run in ("one", "two", "three"):
        restored, _ = backup(tmp_path, source(folder, env=(("CONSTRUCTIONS", str(log)),)), run)
        assert (restored / "state.txt").read_text() == "constructed=1 rows=1"   # nothing carried over
        cwd, isolated, tmpdir = (restored / "where.txt").read_text().split("|")
        assert Path(cwd).name == "state.python" and Path(cwd).parent == tmp_path / f"{run}-work"
        assert isolated == "1" and Path(tmpdir).parent == tmp_path / f"{run}-work"
        assert list((tmp_path / f"{run}-work").iterdir()) == []       # the folders are gone after the run
    pids = log.read_text().split()
    assert len(pids) == 3 and len(set(pids)) == 3 and str(os.getpid()) not in pids


TRICKY_ROWS = [
    ["id", "text", "note"],
    [1, "a, b, c", ""],
    [2, 'she said "no"', None],
    [3, "line one\nline two\r\nline three", "tab\there"],
    [4, "Grüße, 東京, emoji 🎉", "ünïcödé"],
    [5, "", ""],
    [6, None, 3.25],
    [7, True, -0],
]


def expected_fields(rows) -> list[list[str]]:
    """What csv.reader gives back: None as an empty field, everything else as str()."""
    return [["" if value is None else str(value) for value in row] for row in rows]


def test_returned_tables_read_back_with_csv_reader(tmp_path):
    folder = app(tmp_path, f"""
        ROWS = {TRICKY_ROWS!r}

        class State:
            def dump(self, folder):
                people = ({{"name": name, "city": city}} for name, city in [("Zoë", "Köln"), ("O'Brien", "a,b")])
                return {{"tricky": iter(ROWS), "people": people, "empty": []}}
    """)
    restored, _ = backup(tmp_path, source(folder))
    raw = (restored / "tricky.csv").read_bytes()
    assert raw.startswith(b"id,text,note\r\n") and raw.endswith(b"\r\n")
    with open(restored / "tricky.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == expected_fields(TRICKY_ROWS)
    with open(restored / "people.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["name", "city"], ["Zoë", "Köln"], ["O'Brien", "a,b"]]
    assert (restored / "empty.csv").read_bytes() == b""
    members = {m["name"]: m for m in read_manifest(restored.parent)["members"]}
    assert members["state/tricky.csv"]["size"] == len(raw)


def test_files_and_tables_together_and_many_rows_stream_in_batches(tmp_path):
    folder = app(tmp_path, """
        class State:
            def dump(self, folder):
                (folder / "sub").mkdir()
                (folder / "sub" / "config.json").write_text('{"a": 1}')
                return {"numbers": ([i, f"row {i}", i * 0.5] for i in range(50_000))}
    """)
    restored, stats = backup(tmp_path, source(folder))
    assert (restored / "sub" / "config.json").read_text() == '{"a": 1}'
    with open(restored / "numbers.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 50_000 and rows[12_345] == ["12345", "row 12345", "6172.5"]
    assert stats.members == 4        # the folder, sub/, sub/config.json, numbers.csv


def test_empty_folder_and_no_tables_is_a_warning(tmp_path):
    folder = app(tmp_path, """
        class State:
            def dump(self, folder):
                return None
    """)
    _, stats = backup(tmp_path, source(folder))
    assert stats.warning_count == 1
    assert "wrote no file and returned no table" in stats.warnings[0]["message"]


@pytest.mark.parametrize("code, expected", [
    ("""
        class State:
            def dump(self, folder):
                return {"blobs": [["id", "data"], [1, "text"], [2, b"\\x00\\x01"]]}
     """, "table 'blobs' row 3: column 2 is bytes"),
    ("""
        class State:
            def dump(self, folder):
                return {"people": [{"a": 1, "b": 2}, {"a": 3}]}
     """, "table 'people' row 2: its keys ['a'] differ from the first row's ['a', 'b']"),
    ("""
        class State:
            def dump(self, folder):
                return {"../escape": [["a"]]}
     """, "table name '../escape' cannot be a file name"),
    ("""
        class State:
            def dump(self, folder):
                (folder / "t.csv").write_text("mine")
                return {"t": [["a"]]}
     """, "table 't': t.csv already exists"),
    ("""
        class State:
            def dump(self, folder):
                return [["a"]]
     """, "State.dump returned a list; expected None, or a mapping of table name to rows"),
    ("""
        def rows():
            yield ["a"]
            raise KeyError("lost")

        class State:
            def dump(self, folder):
                return {"t": rows()}
     """, "table 't' row 2: the rows raised KeyError: 'lost' (at "),
])
def test_tables_that_cannot_be_written_fail_naming_table_and_row(tmp_path, code, expected):
    assert expected in failure(tmp_path, code)


def test_import_error_names_the_module_and_the_interpreter(tmp_path):
    message = failure(tmp_path, "class State: pass\n", factory="no_such_app.state:State")
    assert message.startswith(f"cannot import no_such_app.state with {sys.executable}: ModuleNotFoundError")
    assert "no_such_app" in message


def test_a_module_that_raises_on_import_gives_its_file_and_line(tmp_path):
    message = failure(tmp_path, "import os\nraise RuntimeError('settings missing\\nsee docs')\n")
    module = tmp_path / "app" / "myapp_state.py"
    assert message.endswith(f"RuntimeError: settings missing see docs (at {module}:2)")


def test_factory_that_raises_gives_type_message_and_last_frame(tmp_path):
    message = failure(tmp_path, """
        def load():
            raise ValueError("database is locked")

        class State:
            def __init__(self):
                load()
    """)
    module = tmp_path / "app" / "myapp_state.py"
    assert message == (f"the factory myapp_state:State raised ValueError: database is locked "
                       f"(at {module}:3)")


def test_method_that_raises_gives_type_message_and_last_frame(tmp_path):
    message = failure(tmp_path, """
        class State:
            def dump(self, folder):
                return 1 / 0
    """)
    assert message == f"State.dump raised ZeroDivisionError: division by zero (at {tmp_path}/app/myapp_state.py:4)"


def test_missing_attribute_and_missing_method(tmp_path):
    assert "myapp_state (imported with " in failure(tmp_path, "x = 1\n", factory="myapp_state:Nope")
    assert "has no attribute 'Nope'" in failure(tmp_path, "x = 1\n", factory="myapp_state:Nope")
    assert failure(tmp_path, "class State: pass\n", method="export") == \
        "the State object has no method 'export'"


@pytest.mark.parametrize("body, expected", [
    ("import os; os._exit(3)", "exited with code 3; last output: "),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "was killed by signal 9 (SIGKILL); out of memory?"),
    ("import sys; sys.stdout.flush(); import os; os._exit(0)", "the child exited before dump() finished"),
])
def test_child_that_dies_fails_with_how(tmp_path, body, expected):
    message = failure(tmp_path, f"""
        class State:
            def dump(self, folder):
                print("dumping users", flush=True)
                {body}
    """)
    assert expected in message
    assert message.endswith("last output: dumping users")


def test_timeout_kills_the_child_and_its_children(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    started = time.monotonic()
    message = failure(tmp_path, f"""
        import subprocess, sys, time

        class State:
            def dump(self, folder):
                child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                open({str(pidfile)!r}, "w").write(str(child.pid))
                print("still loading", flush=True)
                time.sleep(60)
    """, timeout=1.0)
    assert time.monotonic() - started < 15
    assert message.startswith("myapp_state:State dump() timed out after 1s")
    assert message.endswith("last output: still loading")
    wait_for(lambda: not process_alive(int(pidfile.read_text())), "the child's child to be killed", timeout=10)


def test_cancel_stops_the_child_at_once(tmp_path):
    marker = tmp_path / "started"
    folder = app(tmp_path, f"""
        import time

        class State:
            def dump(self, folder):
                open({str(marker)!r}, "w").close()
                time.sleep(60)
    """)
    token = CancelToken()
    canceller = threading.Thread(target=lambda: (wait_for(marker.exists, "the child to start"),
                                                 token.cancel("daemon is stopping")))
    canceller.start()
    archive, started = tmp_path / "run.tar.zst.tmp", time.monotonic()
    with pytest.raises(Cancelled):
        write_archive(archive, [source(folder)], tmp_path / "work", cancel=token)
    canceller.join()
    assert time.monotonic() - started < 15
    assert not archive.exists() and list((tmp_path / "work").iterdir()) == []


def test_missing_interpreter_fails_naming_it(tmp_path):
    message = failure(tmp_path, "class State: pass\n", interpreter=tmp_path / "venv" / "bin" / "python")
    assert message == f"cannot start the interpreter {tmp_path}/venv/bin/python: No such file or directory"
