"""The report's Python environment: a venv under target/ with the pinned requirements,
made on first use. `python()` returns the interpreter to run the report with."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "target", "report-venv")
REQ = os.path.join(HERE, "requirements.txt")
STAMP = os.path.join(VENV, "requirements.txt")


def python():
    py = os.path.join(VENV, "bin", "python")
    want = open(REQ).read()
    if os.path.exists(py) and os.path.exists(STAMP) and open(STAMP).read() == want:
        return py
    print(f"report: installing the pinned chart libraries into {os.path.relpath(VENV, ROOT)} (once)", file=sys.stderr)
    r = subprocess.run([sys.executable, "-m", "venv", "--clear", VENV])
    if r.returncode != 0:
        sys.exit("report: could not make a Python venv; install the venv module "
                 "(Debian/Ubuntu: sudo apt-get install -y python3-venv) and run it again")
    r = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQ])
    if r.returncode != 0:
        sys.exit(f"report: pip could not install {os.path.relpath(REQ, ROOT)} (is PyPI reachable?)")
    with open(STAMP, "w") as f:
        f.write(want)
    return py
