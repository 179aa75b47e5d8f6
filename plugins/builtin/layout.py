"""Where each part of a scene card goes: the caption area, the logo, the title, the pictogram and the text.

Every box is ``(x, y, width, height)`` in pixels. The layout starts from what it must keep clear, then
places the rest in what is left, so the parts never overlap by construction:

1. The title-safe area: 10 % in from each edge (``ass.SAFE_MARGIN``), for every aspect.
2. The caption area, when captions are on. Word captions are drawn by libass with ``ass.placement``: at most
   two lines of its font size above its bottom margin (on 9:16 frames above the bottom quarter, clear of the
   platforms' own overlay). Sentence captions are drawn by the visuals stage in a band of at most
   :data:`BAND_LINES` lines ending at :data:`BAND_BOTTOM` of the height. Soft captions are drawn by the
   player, at the bottom: the area of their style is kept clear for them all the same, so that a card is
   the same with burned and soft captions.
3. The logo, in its corner of the safe area (above the caption area when it sits at the bottom). Beside a
   logo at the top, the title keeps in from both sides by the logo's width where that leaves it most of the
   width (landscape frames); otherwise it starts below the logo.
4. The title at the top of what is left, then the pictogram and the text below it: side by side on
   landscape frames, stacked on portrait ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.builtin.ass import SAFE_MARGIN, is_portrait, placement
from reelcast.plugins.builtin.captions import uses_word_cues

Box = tuple[int, int, int, int]
# The sentence caption band (visuals.draw_cue_band): its bottom edge, as a fraction of the height, and the
# most lines it holds, at BAND_FONT_SCALE of the frame's short side, each BAND_LINE_SPACING high.
BAND_BOTTOM = 0.92
BAND_LINES = 3
BAND_FONT_SCALE = 0.048
BAND_LINE_SPACING = 1.25
# The logo's largest height (of the short side) and width (of the width).
LOGO_HEIGHT = 0.1
LOGO_WIDTH = 0.2


@dataclass(frozen=True)
class SceneLayout:
    title: Box | None
    pictogram: Box
    text: Box | None
    caption: Box | None
    logo: Box | None


def overlaps(first: Box, second: Box) -> bool:
    ax, ay, aw, ah = first
    bx, by, bw, bh = second
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def band_font_size(width: int, height: int) -> int:
    return int(min(width, height) * BAND_FONT_SCALE)


def sentence_band_box(width: int, height: int) -> Box:
    """The tallest sentence caption band (BAND_LINES lines) on a ``width`` x ``height`` frame."""
    size = band_font_size(width, height)
    bottom = height * BAND_BOTTOM
    top = bottom - size * BAND_LINE_SPACING * BAND_LINES - size * 0.5
    return _box(width * 0.08, top, width * 0.92, bottom)


def word_caption_box(width: int, height: int) -> Box:
    """Where libass draws word captions (two lines at most, with their outline and shadow)."""
    place = placement(width, height)
    bottom = height - place.margin_bottom
    top = bottom - 2 * place.font_size - 2 * place.outline - place.shadow
    return _box(place.margin_x, top, width - place.margin_x, bottom + place.outline + place.shadow)


def caption_box(render: job_pb2.RenderSpec, width: int, height: int) -> Box | None:
    """The area captions may cover on this render's frames; None without captions."""
    if not render.captions:
        return None
    # Soft captions get the area of their style too: the card is the same whether the captions are burned
    # in or left to the player, which draws them at the bottom, below the card's content either way.
    return word_caption_box(width, height) if uses_word_cues(render) else sentence_band_box(width, height)


def _box(left: float, top: float, right: float, bottom: float) -> Box:
    return round(left), round(top), max(0, round(right - left)), max(0, round(bottom - top))


def logo_box(width: int, height: int, corner: int, logo_size: tuple[int, int], caption: Box | None) -> Box:
    """The logo's box in ``corner`` of the safe area: scaled to fit LOGO_HEIGHT x LOGO_WIDTH, above the
    caption area when the corner is at the bottom."""
    unit = min(width, height)
    scale = min(unit * LOGO_HEIGHT / max(1, logo_size[1]), width * LOGO_WIDTH / max(1, logo_size[0]))
    logo_width, logo_height = max(1, round(logo_size[0] * scale)), max(1, round(logo_size[1] * scale))
    left = width * SAFE_MARGIN
    right = width * (1 - SAFE_MARGIN) - logo_width
    top = height * SAFE_MARGIN
    bottom = height * (1 - SAFE_MARGIN)
    if caption is not None:
        bottom = min(bottom, caption[1] - unit * 0.02)
    x = left if corner in (job_pb2.CORNER_TOP_LEFT, job_pb2.CORNER_BOTTOM_LEFT) else right
    y = bottom - logo_height if corner in (job_pb2.CORNER_BOTTOM_LEFT, job_pb2.CORNER_BOTTOM_RIGHT) else top
    return round(x), round(y), logo_width, logo_height


def _top_logo(height: int, logo: Box | None) -> Box | None:
    return logo if logo is not None and logo[1] + logo[3] / 2 < height / 2 else None


def _inset_for(width: int, height: int, logo: Box) -> int:
    return logo[2] + round(min(width, height) * 0.03)


def _logo_beside_title(width: int, height: int, logo: Box | None) -> bool:
    """Whether a title can sit beside a logo in a top corner and keep most of the width (landscape); else
    (portrait, a wide logo) it goes below the logo."""
    top_logo = _top_logo(height, logo)
    return (
        top_logo is not None
        and 2 * _inset_for(width, height, top_logo) <= width * (1 - 2 * SAFE_MARGIN) * 0.5
    )


def content_area(width: int, height: int, caption: Box | None, logo: Box | None) -> Box:
    """The safe area less the caption area, and less the band a logo takes where the title cannot sit beside
    it (a bottom corner, or a top one on a narrow frame)."""
    unit = min(width, height)
    gap = unit * 0.03
    # A little air under the safe area's top edge: headings read better a step down from it.
    top = height * SAFE_MARGIN + unit * 0.02
    bottom = height * (1 - SAFE_MARGIN)
    if caption is not None:
        bottom = min(bottom, caption[1] - gap)
    if logo is not None and _top_logo(height, logo) is None:
        bottom = min(bottom, logo[1] - gap)
    elif logo is not None and not _logo_beside_title(width, height, logo):
        top = logo[1] + logo[3] + gap
    return _box(width * SAFE_MARGIN, top, width * (1 - SAFE_MARGIN), max(top, bottom))


def title_inset(width: int, height: int, logo: Box | None) -> int:
    """How far the title keeps in from each side of the area, clear of a logo in a top corner beside it (on
    both sides, so that a centred title stays centred)."""
    if logo is None or not _logo_beside_title(width, height, logo):
        return 0
    return _inset_for(width, height, logo)


def scene_layout(
    width: int,
    height: int,
    *,
    area: Box,
    title_height: int,
    has_text: bool,
    pictogram_side: str,
    caption: Box | None,
    logo: Box | None,
) -> SceneLayout:
    """The boxes of one card: the title (``title_height`` tall) at the top of ``area``, the pictogram and
    the text (when ``has_text``) in the rest."""
    unit = min(width, height)
    gap = round(unit * 0.04)
    x, y, area_width, area_height = area
    inset = title_inset(width, height, logo)
    title = (x + inset, y, area_width - 2 * inset, title_height) if title_height else None
    top = y + (title_height + gap if title_height else 0)
    top_logo = _top_logo(height, logo)
    if top_logo is not None:
        top = max(top, top_logo[1] + top_logo[3] + gap)
    bottom = y + area_height
    room = max(0, bottom - top)
    text: Box | None = None
    if is_portrait(width, height) or height > width:
        side = round(min(area_width * (0.5 if has_text else 0.8), room * (0.5 if has_text else 0.9)))
        picture = (x + (area_width - side) // 2, top + (0 if has_text else (room - side) // 2), side, side)
        if has_text:
            text_top = top + side + gap
            text = (x, text_top, area_width, max(0, bottom - text_top))
    elif has_text:
        side = round(min(room, area_width * 0.3))
        text_width = area_width - side - gap
        picture_y = top + (room - side) // 2
        if pictogram_side == "right":
            picture = (x + area_width - side, picture_y, side, side)
            text = (x, top, text_width, room)
        else:
            picture = (x, picture_y, side, side)
            text = (x + side + gap, top, text_width, room)
    else:
        side = round(min(room, area_width * 0.4))
        picture = (x + (area_width - side) // 2, top + (room - side) // 2, side, side)
    return SceneLayout(title=title, pictogram=picture, text=text, caption=caption, logo=logo)
