#!/usr/bin/env python3
"""restart_one.py BIN_DIR DATA_DIR LABEL: one restart of `banditd serve` on DATA_DIR.

Prints the wall time to the first 200 of /readyz, the process CPU by then, peak RSS, the CPU of
each replay thread (its last sample, every 20 ms, from /proc/PID/task) and the unit-replay log
line. Environment: PORT (18119). Logs go to /tmp/restart-one-LABEL.log.
"""
import os, re, shutil, subprocess, sys, tempfile, time, urllib.request
bin_, dir_, label = sys.argv[1:4]
port = os.environ.get("PORT", "18119")
# Only the experiment the fills use, as restart.sh serves it.
exp = tempfile.mkdtemp(prefix="restart-one-")
shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "experiments", "load-sticky.yaml"), exp)
log = open(f"/tmp/restart-one-{label}.log", "w")
load1 = open("/proc/loadavg").read().split()[0]
t0 = time.time()
p = subprocess.Popen([f"{bin_}/banditd", "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", dir_,
                      "--experiments", exp, "--workers", "2", "--access-log", "off"],
                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
tck = os.sysconf("SC_CLK_TCK")
threads = {}
while True:
    try:
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            try:
                name = open(f"/proc/{p.pid}/task/{tid}/comm").read().strip()
                f = open(f"/proc/{p.pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
                if "log" in name or "replay" in name or "decode" in name:
                    threads[f"{name}.{tid}"] = (int(f[11]) + int(f[12])) * 1000 // tck
            except OSError:
                pass
    except OSError:
        pass
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
            break
    except Exception:
        pass
    if p.poll() is not None:
        sys.exit("died")
    time.sleep(0.02)
ready = int((time.time() - t0) * 1000)
f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
cpu = (int(f[11]) + int(f[12])) * 1000 // tck
peak = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmHWM")][0].split()[1]
p.terminate(); p.wait()
line = open(f"/tmp/restart-one-{label}.log").read()
m = re.search(r"replayed the unit log.*", line)
th = " ".join(f"{k}={v}ms" for k, v in sorted(threads.items()))
print(f"{label} load={load1} ready_ms={ready} cpu_ms={cpu} peak_kb={peak} [{th}] | {m.group(0) if m else ''}", flush=True)
