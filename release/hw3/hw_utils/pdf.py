"""A PDF of an executed notebook without LaTeX: nbconvert's HTML, printed by headless Chromium.

LaTeX export (`nbconvert --to pdf`) is the most reported failure of notebook
tools and Colab has no LaTeX. A browser prints the same HTML a student sees,
with images and tables. Engines, in the order 'auto' tries them:

    chromium   a system Chromium/Chrome (Debian: apt-get install chromium)
    playwright Playwright's own Chromium (pip install playwright; playwright install chromium)
    latex      nbconvert's LaTeX route, only when asked for and xelatex is installed
"""
from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MAX_OUTPUT_LINES = 60   # a longer text output (a training log) keeps its first and last lines
KEEP_LINES = 25

INSTALL_HELP = (
    "No PDF engine found. Install one and run again:\n"
    "  Debian/Ubuntu:  sudo apt-get install chromium\n"
    "  macOS/Windows:  install Google Chrome (it is found automatically)\n"
    "  Colab or any:   pip install playwright && playwright install chromium\n"
    "or use File > Print > Save as PDF in your browser on the executed notebook."
)


class PdfEngineMissing(RuntimeError):
    pass


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def final_text(text: str) -> str:
    """Stream text as a terminal would end up showing it: of a line rewritten with
    carriage returns (a text progress bar), only its last state."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def _merge_streams(outputs: list) -> list:
    """Consecutive pieces of one stream as one output, as Jupyter shows them."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None and previous.get("output_type") == "stream"
                and previous.get("name") == output.get("name")):
            previous["text"] = previous.get("text", "") + output.get("text", "")
        else:
            merged.append(output)
    return merged


def shorten_outputs(nb, max_lines: int = MAX_OUTPUT_LINES, keep: int = KEEP_LINES):
    """A copy of `nb` whose text outputs show progress bars in their final state and
    keep only the first and last lines of long outputs."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = _merge_streams(cell.outputs)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = final_text(output.get("text", ""))
                lines = output["text"].splitlines(True)
                if len(lines) > max_lines:
                    cut = len(lines) - 2 * keep
                    output["text"] = "".join(lines[:keep] + [f"[... {cut} lines cut for the PDF ...]\n"] + lines[-keep:])
    return nb


# Paper is narrower than a screen: wrap long code and output lines instead of cutting
# them; lay the page out at the printable width of A4 (210 mm less the margins), so
# that a table wider than that is found and scaled down to fit (headers wrap only
# at spaces and after underscores, never inside a word); keep images and table rows whole, but let long cells run
# across pages rather than leave a page blank.
PRINT_CSS = """<style>
@page { size: A4; margin: 12mm; }
body { width: 186mm; margin: 0 !important; padding: 0 !important; }
pre, .jp-OutputArea-output pre, .highlight pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
img, tr { break-inside: avoid; }
.jp-OutputArea-output, .jp-RenderedHTMLCommon { overflow: visible !important; }
.jp-RenderedHTMLCommon table { table-layout: auto; font-size: 8px; }
.jp-RenderedHTMLCommon th { overflow-wrap: normal; word-break: normal; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { padding: 2px 4px !important; }
</style>
<script>
addEventListener("load", () => {
  for (const table of document.querySelectorAll(".jp-RenderedHTMLCommon table")) {
    const room = table.parentElement.clientWidth;
    if (table.scrollWidth > room) table.style.zoom = (room / table.scrollWidth).toFixed(3);
  }
});
</script>"""


def notebook_html(nb) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    body = TABLE_HEADER.sub(lambda m: m.group(1) + m.group(2).replace("_", "_<wbr>") + m.group(3), body)
    return body.replace("</head>", PRINT_CSS + "</head>", 1)


# A table header cell whose text may break after an underscore (lr_scheduler_config).
TABLE_HEADER = re.compile(r"(<th[^>]*>)([^<]*)(</th>)")


def _print_with_browser(browser: str, html_path: Path, pdf_path: Path) -> None:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
           "--virtual-time-budget=5000", f"--print-to-pdf={pdf_path}", html_path.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        raise RuntimeError(f"{Path(browser).name} did not write the PDF: {proc.stderr.strip()[-500:]}")


def _print_with_playwright(html_path: Path, pdf_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch()
        page = browser.new_page()
        page.goto(html_path.as_uri())
        page.pdf(path=str(pdf_path), format="A4", print_background=True)
        browser.close()


def notebook_to_pdf(notebook: Path, pdf_path: Path, engine: str = "auto") -> str:
    """Write `pdf_path` from `notebook`; returns the engine that did it."""
    nb = shorten_outputs(nbformat.read(notebook, as_version=4))
    pdf_path = Path(pdf_path).resolve()
    if engine == "latex":
        if not shutil.which("xelatex"):
            raise PdfEngineMissing("engine 'latex' needs xelatex (TeX Live); use the default engine instead.\n" + INSTALL_HELP)
        from nbconvert import PDFExporter

        data, _ = PDFExporter().from_notebook_node(nb)
        pdf_path.write_bytes(data)
        return "latex"
    browser = find_browser() if engine in ("auto", "chromium") else None
    use_playwright = browser is None and engine in ("auto", "playwright") and _has_playwright()
    if browser is None and not use_playwright:
        raise PdfEngineMissing(INSTALL_HELP)
    with tempfile.TemporaryDirectory() as tmp:
        html_path = Path(tmp) / (Path(notebook).stem + ".html")
        html_path.write_text(notebook_html(nb), encoding="utf-8")
        if browser:
            _print_with_browser(browser, html_path, pdf_path)
            return Path(browser).name
        _print_with_playwright(html_path, pdf_path)
        return "playwright"
