"""In JSON mode every line on stderr is one JSON object: uncaught, unraisable and logging's own errors included."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import logging, threading, warnings
    from backupd import logs
    logs.setup("info", "json")
    worker = threading.Thread(target=lambda: 1 / 0, name="worker")
    worker.start()
    worker.join()

    class Broken:
        def __del__(self):
            raise RuntimeError("from __del__")

    Broken()
    warnings.warn("careful")
    logging.getLogger("backupd.x").info("job \\udc80 name")
    logging.getLogger("backupd.x").info("%d runs", "not a number")
    raise ValueError("the main thread")
''')


def test_every_stderr_line_is_a_json_object_whatever_goes_wrong():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stderr.splitlines()]   # raises on a line that is not JSON
    messages = [line["message"] for line in lines]
    assert messages[0] == "uncaught exception in thread worker: ZeroDivisionError"
    assert "ZeroDivisionError" in lines[0]["exc_info"]
    assert any("from __del__" in line.get("exc_info", "") and line["level"] == "ERROR" for line in lines)
    assert any("careful" in message for message in messages)
    assert "job \udc80 name" in messages
    assert any(message == "a log line could not be written" for message in messages)
    assert messages[-1] == "uncaught exception: ValueError" and lines[-1]["level"] == "CRITICAL"
