"""Opens a page in headless Chromium (Debian's `chromium`, installed on first use like
QEMU): the DOM after rendering, a screenshot, and the console messages the page logged."""
import os
import re
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# No network here: the flags keep Chromium from trying (and from waiting on it).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-features=MediaRouter,OptimizationHints", "--enable-logging=stderr", "--v=0"]


def chromium():
    subprocess.run([os.path.join(ROOT, "tools", "ensure-pkg.sh"), "chromium", "chromium"], check=True)
    return shutil.which("chromium")


def _run(url, extra, timeout=120):
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
                           capture_output=True, text=True, timeout=timeout)
    return r


def console_errors(stderr):
    """The page's console messages. Chromium logs each as an `INFO:CONSOLE` line without its
    level, so every message counts: the report's pages have no script and log nothing, and an
    uncaught error or a failed resource load would show here."""
    return [line.strip() for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def dump_dom(path):
    """(DOM after load, console errors)."""
    r = _run("file://" + os.path.abspath(path), ["--dump-dom"])
    if r.returncode != 0:
        raise RuntimeError(f"chromium --dump-dom failed ({r.returncode}): {r.stderr[-800:]}")
    return r.stdout, console_errors(r.stderr)


def screenshot(path, png, size="1200,3000"):
    r = _run("file://" + os.path.abspath(path), [f"--screenshot={os.path.abspath(png)}", f"--window-size={size}"])
    if r.returncode != 0 or not os.path.exists(png):
        raise RuntimeError(f"chromium --screenshot failed ({r.returncode}): {r.stderr[-800:]}")
    return console_errors(r.stderr)
