"""Run a command and write its peak RSS (``ru_maxrss``, KiB) to a file: ``rusage.py OUT -- CMD...``.

Why a wrapper: Linux records the RSS a process had *before* ``exec`` in its ``ru_maxrss``, so a
child forked from a large parent (the benchmark, with torch loaded) would report the parent's size.
Forked from this small process instead, the figure is the command's own (largest process of its
tree: descendants it waited for are included).
"""

import json
import os
import subprocess
import sys

if __name__ == "__main__":
    out, sep, *cmd = sys.argv[1:]
    if sep != "--" or not cmd:
        raise SystemExit("usage: rusage.py OUT -- CMD...")
    proc = subprocess.Popen(cmd)
    _, status, ru = os.wait4(proc.pid, 0)
    with open(out, "w") as f:
        cpu = {"user_s": round(ru.ru_utime, 2), "sys_s": round(ru.ru_stime, 2)}
        json.dump({"max_rss_kib": ru.ru_maxrss, "exit": os.waitstatus_to_exitcode(status), **cpu}, f)
    sys.exit(os.waitstatus_to_exitcode(status))
