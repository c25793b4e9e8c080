"""Run one command and, when it exits, kill everything it left behind.

Started by script_run.run_command as `python -I -S reaper.py ARGV...` (no site, no bilevel
import: it costs a few milliseconds). It makes itself a child subreaper, so every descendant
of the command that is orphaned -- a daemon that called setsid, a data-loader worker whose
parent died -- is re-parented to it rather than to init. When the command exits, or when the
reaper gets SIGTERM (the caller's timeout), it SIGKILLs every descendant, reaps them, and exits
with the command's status. So a trial is decided when its main process exits, and nothing it
started outlives it, even outside its process group.
"""

import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def _prctl(option, value):
    try:
        import ctypes

        ctypes.CDLL(None).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _descendants(root):
    """Every process below root, from /proc/<pid>/stat (parent pid is field 4)."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            parents.setdefault(int(fields[1]), []).append(int(name))
    out, stack = set(), [root]
    while stack:
        for child in parents.get(stack.pop(), ()):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def sweep():
    """SIGKILL every descendant (orphans are re-parented to us as they die) and reap them."""
    me = os.getpid()
    while True:
        for pid in _descendants(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return  # no child left at all
        time.sleep(0.01)  # some still dying, or one forked during the scan: again


def main():
    argv = sys.argv[1:]
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    status = {"code": 127}

    def on_term(signum, frame):
        sweep()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        pid = os.fork()
    except OSError as exc:
        print(f"could not start {argv[0]!r}: {exc}", flush=True)
        os._exit(127)
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a SIGKILLed reaper cannot sweep: die too
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"could not start {argv[0]!r}: {exc}", flush=True)
        os._exit(127)
    while True:
        try:
            _, wstatus = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    status["code"] = os.waitstatus_to_exitcode(wstatus)
    sweep()
    code = status["code"]
    if code < 0:  # killed by a signal: say so the way a shell does
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


if __name__ == "__main__":
    main()
