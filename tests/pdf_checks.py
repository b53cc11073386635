"""Is a PDF readable on a machine with no Chinese font and no Adobe-GB1 language pack? Checked with poppler.

- `fonts(pdf)`: `pdffonts` rows (name, type, embedded, subset); a font a viewer must supply is not embedded.
- `render_without_fonts(pdf)`: the first page rendered by `pdftoppm` under a fontconfig that knows no font at
  all, so nothing but the PDF's own embedded fonts can draw a glyph (an unembedded STSong-Light page renders
  blank and poppler reports the missing Adobe-GB1 pack; tests/test_pdf_documents.py shows it).
- `text(pdf)`: every page's text as `pdftotext` reads it back (what a viewer's copy and search see).
- `glyph_match(...)`: where `pdftotext -bbox` says a word is, the rendered ink compared with the same word drawn
  by Pillow from the font file: a correlation near 1 means those very Chinese glyphs are on the page (no OCR
  is needed, and a box of missing-glyph squares or another text scores low).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.services import services_required

DPI = 150
EMPTY_FONTCONFIG = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><cachedir>{cache}</cachedir></fontconfig>
"""
WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


def require_poppler() -> None:
    import pytest

    missing = [tool for tool in ("pdffonts", "pdftoppm", "pdftotext") if shutil.which(tool) is None]
    if missing:
        reason = f"poppler-utils not installed ({', '.join(missing)}); `apt-get install poppler-utils`"
        if services_required():
            pytest.fail(f"{reason} (GOVSHARE_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(f"{reason}; set GOVSHARE_REQUIRE_SERVICES=1 to make this a failure")


@dataclass(frozen=True)
class PdfFont:
    name: str
    kind: str
    embedded: bool
    subset: bool


def fonts(pdf: Path) -> list[PdfFont]:
    out = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines()[2:]:
        # name, type (may hold spaces: "CID TrueType"), encoding, emb, sub, uni, object, generation
        parts = line.split()
        emb, sub = parts[-5], parts[-4]
        rows.append(PdfFont(name=parts[0], kind=" ".join(parts[1:-6]), embedded=emb == "yes", subset=sub == "yes"))
    return rows


def text(pdf: Path) -> str:
    """The PDF's text, page after page, in reading order."""
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


@dataclass
class Rendered:
    page: np.ndarray  # grayscale, 0 = black
    warnings: str  # what poppler printed (a missing font or language pack shows here)
    words: list[tuple[str, tuple[float, float, float, float]]]  # (text, box in points) from pdftotext -bbox

    def ink_pixels(self) -> int:
        return int((self.page < 128).sum())

    def word_ink(self, text: str) -> np.ndarray:
        """The rendered pixels of the first word equal to `text`, trimmed to its ink."""
        box = next((b for w, b in self.words if w == text), None)
        assert box is not None, f"{text!r} is not a word of the page: {[w for w, _ in self.words][:40]}"
        x0, y0, x1, y1 = (round(v * DPI / 72) for v in box)
        return _trim(self.page[max(y0 - 3, 0):y1 + 3, max(x0 - 3, 0):x1 + 3])


def render_without_fonts(pdf: Path, work: Path) -> Rendered:
    """The first page at DPI, drawn by poppler with no system font available, and its words' positions."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "fonts.conf"
    config.write_text(EMPTY_FONTCONFIG.format(cache=work / "fontcache"))
    env = {"PATH": "/usr/bin:/bin", "FONTCONFIG_FILE": str(config), "HOME": str(work)}
    drawn = subprocess.run(["pdftoppm", "-r", str(DPI), "-f", "1", "-l", "1", "-gray", str(pdf), str(work / "page")],
                           capture_output=True, text=True, env=env, check=True)
    page = np.asarray(Image.open(next(work.glob("page*.pgm"))), dtype=float)
    boxes = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout
    words = [(m.group(5), tuple(float(m.group(i)) for i in range(1, 5))) for m in WORD.finditer(boxes)]
    return Rendered(page=page, warnings=drawn.stderr, words=words)  # type: ignore[arg-type]


def _trim(pixels: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(pixels < 160)
    assert len(ys), "no ink where the word should be: its glyphs were not drawn"
    return pixels[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def drawn_by_pillow(text: str, font_file: Path, shape: tuple[int, ...]) -> np.ndarray:
    """`text` in the font file's first face, trimmed to its ink and scaled to `shape`."""
    font = ImageFont.truetype(str(font_file), 96, index=0)
    canvas = Image.new("L", (110 * len(text) + 40, 170), 255)
    ImageDraw.Draw(canvas).text((20, 20), text, font=font, fill=0)
    ink = _trim(np.asarray(canvas, dtype=float)).astype("uint8")
    return np.asarray(Image.fromarray(ink).resize((shape[1], shape[0]), Image.LANCZOS), dtype=float)


def glyph_match(rendered: Rendered, word: str, font_file: Path, *, drawn_as: str | None = None) -> float:
    """Correlation (-1..1) of the page's rendering of `word` with Pillow's drawing of `drawn_as` (default the
    word itself). The same text scores above 0.9 here; the reversed text about 0.2."""
    got = rendered.word_ink(word)
    expected = drawn_by_pillow(drawn_as or word, font_file, got.shape)
    return float(np.corrcoef(got.ravel(), expected.ravel())[0, 1])
