"""Any brand colour an administrator picks keeps the widget's text readable (WCAG 2 AA, 4.5:1):
bootstrap pairs it with the colour for text drawn on it and a darkened copy for text on white."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.actions.widget import BLACK, NEAR_BLACK, WHITE, contrast_ratio, readable_colors
from tests.conftest import bootstrap
from tests.factories import make_branch, make_inbox

COLOURS = st.integers(min_value=0, max_value=0xFFFFFF).map(lambda n: f"#{n:06x}")


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1)
    # The default brand blue with white text, and the grey that just passes AA.
    assert contrast_ratio("#2563eb", WHITE) == pytest.approx(5.17, abs=0.01)
    assert contrast_ratio("#767676", WHITE) == pytest.approx(4.54, abs=0.01)


@given(COLOURS)
def test_every_brand_colour_gets_readable_companions(colour):
    colours = readable_colors(colour)
    # Text on the brand colour: white where it reads, else near-black, else black; one of white
    # and black always reaches 4.5:1 (at worst, a mid-grey, about 4.6 with black).
    on = colours["on_color"]
    assert contrast_ratio(colour, on) >= 4.5
    if on != WHITE:
        assert contrast_ratio(colour, WHITE) < 4.5
    if on == BLACK:
        assert contrast_ratio(colour, NEAR_BLACK) < 4.5
    # The brand colour as text on white: unchanged when it already reads, else darkened to it.
    assert contrast_ratio(colours["text_color"], WHITE) >= 4.5
    if contrast_ratio(colour, WHITE) >= 4.5:
        assert colours["text_color"] == colour


def test_a_light_brand_colour_gets_dark_text_and_a_darker_text_colour():
    assert readable_colors("#2563eb") == {"on_color": WHITE, "text_color": "#2563eb"}
    yellow = readable_colors("#FACC15")
    assert yellow["on_color"] == NEAR_BLACK
    assert yellow["text_color"] != "#facc15"
    # Darkened, not changed in hue: every channel shrinks by the same factor.
    assert int(yellow["text_color"][1:3], 16) > int(yellow["text_color"][3:5], 16) > int(yellow["text_color"][5:7], 16)


@pytest.mark.django_db
def test_bootstrap_carries_the_brand_colour_and_its_companions():
    inbox = make_inbox(make_branch(), settings={"widget": {"color": "#facc15"}})
    widget = bootstrap(inbox)["settings"]["widget"]
    assert widget["color"] == "#facc15"
    assert widget["on_color"] == NEAR_BLACK
    assert widget["text_color"] == readable_colors("#facc15")["text_color"]
    # The inbox's stored settings are left alone.
    inbox.refresh_from_db()
    assert "on_color" not in inbox.settings["widget"]
