"""The Chinese font every PDF of the hub embeds (需求申请表, 评估定期通报), so a form opens with its text in any
viewer, also one without Adobe's Chinese language pack.

reportlab embeds a TrueType font as a subset of the glyphs the document uses (a few dozen KB); it cannot embed
CFF-outline OpenType (Noto Sans CJK, Source Han), and its built-in STSong-Light is never embedded at all (a viewer
without the Adobe-GB1 pack shows no Chinese). So the font is a TrueType-outline CJK font from the distribution:
GOVSHARE_PDF_FONT when set, else the first installed of CANDIDATES. WenQuanYi Micro Hei (Debian's
fonts-wqy-microhei; Apache-2.0 or GPL-3 with the font exception, both allowing embedding) is what `.ci/run`,
`make demo` and the Dockerfile install. Its Latin glyphs cover digits and codes, so one font serves the page.
"""

from __future__ import annotations

from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

from core.errors import ConfigError
from core.settings import get_settings

# Debian packages of TrueType-outline CJK fonts whose licences allow embedding, in order of preference.
CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # fonts-wqy-microhei
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),  # fonts-droid-fallback (Apache-2.0)
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),  # fonts-wqy-zenhei
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),  # fonts-arphic-uming (Arphic Public License)
)
INSTALL_HINT = ("安装可嵌入的中文字体：apt-get install fonts-wqy-microhei，或将 GOVSHARE_PDF_FONT 设为 TrueType 中文字体文件 / "
                "install a CJK TrueType font (apt-get install fonts-wqy-microhei) or set GOVSHARE_PDF_FONT to one")


def font_file() -> Path:
    """The font file PDFs embed: the setting, else the first installed candidate; a clear error otherwise."""
    chosen = get_settings().pdf_font
    if chosen is not None:
        if not chosen.is_file():
            raise ConfigError(f"GOVSHARE_PDF_FONT={chosen} does not exist; {INSTALL_HINT}")
        return chosen
    for candidate in CANDIDATES:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"没有可嵌入PDF的中文字体 / no Chinese font to embed in PDFs: {INSTALL_HINT}")


def cjk_font() -> str:
    """Register the font with reportlab once per file and return its name, for setFont and paragraph styles."""
    path = font_file()
    name = f"govshare-cjk-{path.stem}"
    if name not in pdfmetrics.getRegisteredFontNames():
        try:
            # a .ttc holds several faces; the first is the regular proportional one in every candidate
            pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
        except TTFError as error:
            raise ConfigError(f"{path} cannot be embedded ({error}): PDFs need a TrueType-outline font, not CFF "
                              f"OpenType; {INSTALL_HINT}") from None
    return name
