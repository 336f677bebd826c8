"""Open the executed notebooks of an experiment in JupyterLab, in headless Chromium, and check them.

    python tools/browser_check.py [results/demo] [results/tables]   (`make browser-check` installs what it needs)

For each results/<exp>/notebooks/*.ipynb (results/tables/notebooks/: the paper's tables of `make tables`): opens it in JupyterLab, fails on an error output or a
stderr box, and on a cell tagged "figure" that shows no image; saves a screenshot of the whole
notebook to results/<exp>/screenshots/<notebook>.png. Then runs each notebook again live (Run All in
JupyterLab: every stage is found done), types a query of its own into the explorer (06) and into the
search widget (08), and saves <notebook>-live.png (and the widget alone, <notebook>-widget.png); a
live run must show no error and change no file outside results/<exp>/scratch/ (lock notes aside).

Needs Chromium and ChromeDriver (Debian: apt-get install chromium chromium-driver) and selenium.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 1500
SHOT_HEIGHT = 12000  # one screenshot holds at most this many pixels of notebook; longer ones get parts
LIVE_NOTEBOOKS = ("06_explore", "08_search")  # a query of our own is typed into their widget
LIVE_QUERY = "a red circle moving across a dark background"

# JupyterLab settings for the check: every cell rendered (no windowing), no news or update prompts.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}


class CheckFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_jupyterlab(workdir: Path, port: int, log: Path) -> subprocess.Popen:
    settings = workdir / "settings"
    for name, value in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    env = {k: v for k, v in os.environ.items() if k not in ("TCLIB_BATCH",)}
    env["TCLIB_ROOT"] = str(ROOT)
    command = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
               f"--ServerApp.root_dir={ROOT}", f"--LabApp.user_settings_dir={settings}",
               f"--LabApp.workspaces_dir={workdir / 'workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # a container's root user
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if server.poll() is not None:
            raise CheckFailed(f"JupyterLab exited with code {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise CheckFailed(f"JupyterLab did not answer on port {port} within 120 s")


def start_browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        raise CheckFailed("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", f"--user-data-dir={profile}", f"--window-size={WIDTH},1200"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def wait_for(browser, condition, seconds: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, seconds, poll_frequency=0.5).until(lambda b: condition(b))
    except TimeoutException:
        raise CheckFailed(f"timed out after {seconds:.0f} s waiting for {what}") from None


# JavaScript run in the page: the cells of the open notebook and what each one shows.
CELLS_JS = """
const notebook = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
if (!notebook) return null;
return Array.from(notebook.querySelectorAll(':scope .jp-Cell')).map(cell => ({
  images: Array.from(cell.querySelectorAll('.jp-OutputArea-output img')).filter(i => i.complete && i.naturalWidth > 0).length,
  stderr: cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').length,
  widgetErrors: Array.from(cell.querySelectorAll('.jp-OutputArea-output')).filter(o => o.innerText.includes('Error displaying widget')).length,
  widgets: cell.querySelectorAll('.jp-OutputArea-output .widget-box, .jp-OutputArea-output .jupyter-widgets').length,
  prompt: (cell.querySelector('.jp-InputPrompt') || {innerText: ''}).innerText.trim(),
}));
"""
SCROLLER_JS = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
return panel.querySelector('.jp-WindowedPanel-outer') || panel.querySelector('.jp-Notebook');
"""

CONTENT_HEIGHT_JS = """
const scroller = arguments[0];
const cells = scroller.querySelectorAll('.jp-Cell');
const last = cells[cells.length - 1];
return last.getBoundingClientRect().bottom - scroller.getBoundingClientRect().top + scroller.scrollTop + 30;
"""


def open_notebook(browser, port: int, relative: str, n_cells: int) -> list[dict]:
    browser.set_window_size(WIDTH, 1200)
    browser.get(f"http://127.0.0.1:{port}/lab/tree/{relative}?reset")
    wait_for(browser, lambda b: (c := b.execute_script(CELLS_JS)) and len(c) == n_cells and c,
                     120, f"{relative} to show its {n_cells} cells")
    time.sleep(2)  # let images decode and widgets render
    return browser.execute_script(CELLS_JS)


def screenshot(browser, path: Path) -> list[Path]:
    """The whole notebook, in parts of at most SHOT_HEIGHT pixels."""
    scroller = browser.execute_script(SCROLLER_JS)
    total = int(browser.execute_script(CONTENT_HEIGHT_JS, scroller))
    chrome = 1200 - browser.execute_script("return arguments[0].clientHeight", scroller)
    view = min(total, SHOT_HEIGHT)
    browser.set_window_size(WIDTH, view + chrome)
    time.sleep(1)
    paths = []
    for part, top in enumerate(range(0, total, view)):
        browser.execute_script("arguments[0].scrollTop = arguments[1]", scroller, top)
        time.sleep(0.5)
        target = path if part == 0 else path.with_name(f"{path.stem}-{part + 1}{path.suffix}")
        browser.save_screenshot(str(target))
        paths.append(target)
    browser.set_window_size(WIDTH, 1200)
    return paths


def check_notebook(browser, port: int, notebook: Path, screenshots: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    shown = open_notebook(browser, port, notebook.relative_to(ROOT).as_posix(), len(cells))
    problems = []
    for i, (cell, dom) in enumerate(zip(cells, shown, strict=False)):
        where = f"{notebook.name} cell {i + 1}"
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])) or dom["stderr"]:
            problems.append(f"{where}: shows an error or stderr output")
        if dom["widgetErrors"]:
            problems.append(f"{where}: a widget could not be displayed")
        if "figure" in cell.get("metadata", {}).get("tags", []) and not dom["images"]:
            problems.append(f"{where}: a figure cell shows no image")
    shots = screenshot(browser, screenshots / f"{notebook.stem}.png")
    figures = sum(1 for c in cells if "figure" in c.get("metadata", {}).get("tags", []))
    print(f"{notebook.name}: {len(cells)} cells, {sum(d['images'] for d in shown)} images "
          f"({figures} figure cells), {len(problems)} problems; screenshot {', '.join(p.name for p in shots)}")
    return problems


def files_outside(exp_dir: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file of the project except .git, .venv, the scratch folder, screenshots and
    the lock files (a run's note of who holds a folder, not a result)."""
    skip = {ROOT / ".git", ROOT / ".venv", exp_dir / "scratch", exp_dir / "screenshots"}
    state = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip and d != "__pycache__"]
        for name in files:
            if name == ".lock":
                continue
            stat = Path(folder, name).stat()
            state[str(Path(folder, name).relative_to(ROOT))] = (stat.st_size, stat.st_mtime_ns)
    return state


def run_all_live(browser, port: int, notebook: Path, screenshots: Path) -> list[str]:
    """Run All on an executed notebook in JupyterLab, as a person re-running it would; for the
    explorer, then a query of our own in its widget. Fails on error output and on any file changed
    outside results/<exp>/scratch/ (every stage is done: nothing may be recomputed or rewritten)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    exp_dir = notebook.parent.parent
    before = files_outside(exp_dir)
    cells = json.loads(notebook.read_text())["cells"]
    open_notebook(browser, port, notebook.relative_to(ROOT).as_posix(), len(cells))
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
             or "Idle" in b.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget").get_attribute("innerText"),
             120, "the kernel to start")
    click_menu(browser, "Run", "Run All Cells")
    code_cells = sum(1 for c in cells if c["cell_type"] == "code")
    started = time.time()
    wait_for(browser, lambda b: sum(1 for c in b.execute_script(CELLS_JS) if c["prompt"] not in ("", "[ ]:", "[*]:"))
             == code_cells and not any(c["prompt"] == "[*]:" for c in b.execute_script(CELLS_JS)),
             600, "Run All to finish")
    print(f"{notebook.name}: Run All in JupyterLab finished in {time.time() - started:.0f} s")
    shown = browser.execute_script(CELLS_JS)
    problems = [f"{notebook.name} (live) cell {i + 1}: shows an error or stderr output"
                for i, d in enumerate(shown) if d["stderr"]]
    problems += [f"{notebook.name} (live) cell {i + 1}: a figure cell shows no image"
                 for i, (cell, d) in enumerate(zip(cells, shown, strict=False))
                 if "figure" in cell.get("metadata", {}).get("tags", []) and not d["images"]]
    if notebook.stem not in LIVE_NOTEBOOKS:
        pass
    elif not shown[-1]["widgets"]:
        problems.append(f"{notebook.name} (live): the widget did not appear")
    else:
        query = browser.find_elements(By.CSS_SELECTOR, ".jp-Cell:last-child .widget-text input")
        if not query:
            problems.append(f"{notebook.name} (live): the widget has no query box")
        else:
            query[0].clear()
            query[0].send_keys(LIVE_QUERY + Keys.ENTER)
            wait_for(browser, lambda b: LIVE_QUERY in b.execute_script(
                "return document.querySelector('.jp-Cell:last-child .jp-OutputArea').innerText")
                or b.execute_script("return Array.from(document.querySelectorAll('.jp-Cell:last-child img'))"
                                    ".some(i => i.complete && i.naturalWidth > 0)"), 120, "the widget to answer")
            time.sleep(5)
    shots = screenshot(browser, screenshots / f"{notebook.stem}-live.png")
    widget_shot = screenshots / f"{notebook.stem}-widget.png"
    if notebook.stem in LIVE_NOTEBOOKS and widget_picture(browser, widget_shot):
        shots.append(widget_shot)
    after = files_outside(exp_dir)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if changed:
        problems.append(f"{notebook.name} (live): Run All changed files outside {exp_dir.name}/scratch: "
                        + ", ".join(changed[:10]))
    print(f"{notebook.name} (live): {len(problems)} problems; screenshot {', '.join(p.name for p in shots)}")
    return problems


def widget_picture(browser, path: Path) -> bool:
    """The explorer's cell alone (its output: the widgets), the window tall enough to hold it."""
    from selenium.webdriver.common.by import By

    cells = browser.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
    if not cells:
        return False
    output = cells[-1].find_elements(By.CSS_SELECTOR, ".jp-OutputArea")
    target = output[0] if output else cells[-1]
    height = browser.execute_script("return arguments[0].getBoundingClientRect().height", target)
    browser.set_window_size(WIDTH, int(height) + 400)
    browser.execute_script("arguments[0].scrollIntoView()", target)
    time.sleep(1)
    target.screenshot(str(path))
    browser.set_window_size(WIDTH, 1200)
    return True


def click_menu(browser, menu: str, item: str) -> None:
    from selenium.webdriver.common.by import By

    bar = [e for e in browser.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == menu]
    if not bar:
        raise CheckFailed(f"no '{menu}' menu in JupyterLab")
    bar[0].click()
    entry = wait_for(browser, lambda b: [e for e in b.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")
                                         if e.text == item], 10, f"the menu item '{item}'")
    entry[0].click()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dirs", nargs="*", default=["results/demo"],
                        help="results/<exp> of a finished reproduce, results/tables of `make tables`")
    parser.add_argument("--no-live", action="store_true", help="skip the live Run All of each notebook")
    args = parser.parse_args(argv)
    notebooks: list[Path] = []
    for exp in args.exp_dirs:
        exp_dir = (ROOT / exp).resolve()
        found = sorted((exp_dir / "notebooks").glob("*.ipynb"))
        if not found:
            print(f"no executed notebooks in {exp_dir / 'notebooks'}: run `make reproduce` (or `make tables`) first",
                  file=sys.stderr)
            return 2
        (exp_dir / "screenshots").mkdir(exist_ok=True)
        notebooks += found
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tclib-browser-") as tmp:
        work = Path(tmp)
        port = free_port()
        server = browser = None
        try:
            server = start_jupyterlab(work, port, work / "jupyterlab.log")
            browser = start_browser(work / "profile")
            for notebook in notebooks:
                problems += check_notebook(browser, port, notebook, notebook.parent.parent / "screenshots")
            if not args.no_live:
                for notebook in notebooks:
                    problems += run_all_live(browser, port, notebook, notebook.parent.parent / "screenshots")
        except CheckFailed as error:
            problems.append(str(error))
        finally:
            if browser is not None:
                browser.quit()
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            log_copy = notebooks[0].parent.parent / "screenshots" / "jupyterlab.log"
            if problems and (work / "jupyterlab.log").is_file():
                shutil.copy(work / "jupyterlab.log", log_copy)
                problems.append(f"JupyterLab's log: {log_copy.relative_to(ROOT)}")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    folders = sorted({str((n.parent.parent / "screenshots").relative_to(ROOT)) for n in notebooks})
    print(f"browser check: {len(notebooks)} notebooks, {len(problems)} problems; screenshots in "
          f"{', '.join(f + '/' for f in folders)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
