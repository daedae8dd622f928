"""Signal handlers only record; after the first SIGTERM a second one ends the process at once."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, signal, socket, sys
    from backupd.daemon.lifecycle import _SignalRecorder
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    recorder = _SignalRecorder(wake_w)
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGTERM)
    print(recorder.take(wake_r), flush=True)      # recorded, nothing else happened
    recorder.exit_on_next()
    os.kill(os.getpid(), signal.SIGTERM)          # the second one: exits here
    print("still alive", flush=True)
""")


def test_first_signals_are_recorded_second_term_exits_at_once():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30)
    assert result.stdout.splitlines() == [str([int(signal.SIGHUP), int(signal.SIGTERM)])], result.stderr
    assert result.returncode == 128 + signal.SIGTERM
