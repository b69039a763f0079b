"""The agreement of our ranking with the paper's (Kendall's τ), as Table 1's verdict lines print it."""
import re

import pytest

from acai.reproduce.tables import PAPER_TABLE1, TABLES, Cell, rank_agreement, render

PAPER_MEAN_DISTANCE = {model: values[0] for model, values in PAPER_TABLE1.items()}


def table1_cells(mean_distance: dict[str, float], states: dict[str, str] | None = None) -> dict:
    """One seed per model: the given Mean Distance (×1e-3 as the paper prints it) and Smoothness 0.5."""
    states = states or {}
    return {("lines", 64): {model: {"mean_distance": Cell([value * 1e-3], [states.get(model, "ok")]),
                                    "smoothness": Cell([0.5], [states.get(model, "ok")])}
                            for model, value in mean_distance.items()}}


def tau_in(markdown: str, heading: str) -> tuple[float, int] | None:
    line = next(line for line in markdown.splitlines() if line.startswith(f"lines d_z=64, {heading}"))
    found = re.search(r"Kendall's τ with the paper over those (\d+): (-?[0-9.]+)", line)
    return (float(found.group(2)), int(found.group(1))) if found else None


def test_the_papers_own_means_agree_fully_and_their_reverse_not_at_all():
    ours = {model: mean for model, (mean, _) in PAPER_MEAN_DISTANCE.items()}
    assert rank_agreement(ours, PAPER_MEAN_DISTANCE) == (1.0, 7)
    reversed_ = {model: -mean for model, mean in ours.items()}
    assert rank_agreement(reversed_, PAPER_MEAN_DISTANCE) == (-1.0, 7)


def test_one_swapped_pair_of_seven_gives_the_textbook_tau():
    ours = {model: mean for model, (mean, _) in PAPER_MEAN_DISTANCE.items()}
    ours["baseline"], ours["vqvae"] = ours["vqvae"], ours["baseline"]  # 6.88 and 5.41: adjacent in the order
    concordant, discordant = 20, 1  # of the 21 pairs, only the swapped one disagrees
    tau, n = rank_agreement(ours, PAPER_MEAN_DISTANCE)
    assert n == 7 and tau == pytest.approx((concordant - discordant) / 21)


def test_the_verdict_ranks_only_eligible_models_and_says_nothing_under_three():
    ours = {model: mean for model, (mean, _) in PAPER_MEAN_DISTANCE.items()}
    markdown, _ = render(TABLES["table1"], table1_cells(ours), 1, "header")
    assert tau_in(markdown, "Mean Distance") == (1.0, 7)
    # Smoothness is 0.5 for every model: every pair tied on our side, τ-b undefined, no claim printed.
    assert tau_in(markdown, "Smoothness") is None

    at_mean_image = {model: "mean image" for model in ("aae", "vqvae")}
    ours_swapped = dict(ours, aae=100.0, vqvae=0.01)  # would reverse the order were they ranked
    markdown, _ = render(TABLES["table1"], table1_cells(ours_swapped, at_mean_image), 1, "header")
    assert tau_in(markdown, "Mean Distance") == (1.0, 5)

    only_two = {model: ours[model] for model in ("acai", "baseline")}
    markdown, _ = render(TABLES["table1"], table1_cells(only_two), 1, "header")
    assert tau_in(markdown, "Mean Distance") is None
    assert rank_agreement(dict(only_two, vae=1.21), PAPER_MEAN_DISTANCE) == (1.0, 3)  # three: the least it judges
