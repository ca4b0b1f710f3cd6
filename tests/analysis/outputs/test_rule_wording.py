"""The one wording of a fitted exponent against the scaling rules (scalestudy.analysis.outputs.rule_wording): an
interval that holds a rule's value is "consistent with" it and names every other rule it holds."""

import pytest

from scalestudy.analysis.outputs.rule_wording import ALPHA_RULES, BETA_RULES, GAMMA_RULES, rule_wording


def test_an_interval_holding_one_rule_is_consistent_with_it_and_excludes_the_others():
    text = rule_wording("α", 0.5, (0.45, 0.56), ALPHA_RULES)
    assert text == ("α's 95 % interval [0.450, 0.560] is consistent with the square-root rule (ε ∝ √B, α = 0.5); "
                    "it excludes the linear rule (α = 1) and a constant ε (α = 0)")


def test_an_interval_holding_two_rules_names_both_and_cannot_tell_them_apart():
    text = rule_wording("α", 0.3, (-0.1, 0.6), ALPHA_RULES)
    assert text == ("α's 95 % interval [-0.100, 0.600] is consistent with the square-root rule (ε ∝ √B, α = 0.5) "
                    "and also with a constant ε (ε independent of B, α = 0): the data cannot tell them apart; it "
                    "excludes the linear rule (α = 1)")
    every = rule_wording("α", 0.37, (-0.658, 1.393), ALPHA_RULES)
    assert every.endswith("and a constant ε (ε independent of B, α = 0): the data cannot tell them apart")
    assert "the linear rule (ε ∝ B, α = 1)" in every and "excludes" not in every


def test_an_interval_holding_no_rule_excludes_them_all():
    assert rule_wording("α", 0.2, (0.1, 0.3), ALPHA_RULES) == (
        "α's 95 % interval [0.100, 0.300] excludes the linear rule (α = 1), the square-root rule (α = 0.5) and a "
        "constant ε (α = 0): consistent with no rule")


@pytest.mark.parametrize("symbol, ci, rules, held", [
    ("β", (0.8, 1.1), BETA_RULES, ["a constant effective learning rate ε/(1−m) (ε ∝ 1−m, β = 1)"]),
    ("β", (0.2, 0.5), BETA_RULES, []),
    ("γ", (-1.1, -0.8), GAMMA_RULES, ["Smith & Le's constant noise scale εN/(B(1−m)) (ε ∝ 1/N, γ = −1)"]),
    ("γ", (-1.1, 0.2), GAMMA_RULES, ["Smith & Le's constant noise scale", "an ε independent of N (ε ∝ N⁰, γ = 0)"]),
    ("γ", (-0.6, -0.3), GAMMA_RULES, []),
])
def test_beta_and_gamma_are_held_against_their_rules(symbol, ci, rules, held):
    text = rule_wording(symbol, sum(ci) / 2, ci, rules)
    assert text.startswith(f"{symbol}'s 95 % interval")
    assert ("consistent with no rule" in text) == (not held)
    assert all(part in text for part in held)
    assert ("cannot tell them apart" in text) == (len(held) > 1)


def test_without_an_estimate_or_an_interval_nothing_is_affirmed():
    assert rule_wording("α", None, None, ALPHA_RULES) == "α is not fitted: no rule to compare with"
    text = rule_wording("α", 0.7, None, ALPHA_RULES)
    assert text.startswith("α = 0.700 has no 95 % interval") and "consistent" not in text
