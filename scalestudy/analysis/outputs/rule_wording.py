"""The one home of how a fitted exponent is held against the scaling rules, in words.

An interval that holds a rule's value is *consistent with* the rule, never proof of it: it holds
every other value between its ends as well, so the wording names every rule it holds (then the data
cannot tell them apart) and every rule it excludes. report.md and the terminal summary both use
:func:`rule_wording`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str  # "the linear rule"
    value: float  # the exponent the rule sets
    form: str  # "ε ∝ B"


# ε* = k·B^α·(1−m)^β·N^γ. α: SGD's linear rule (Goyal et al. 2017, Smith et al. 2018), Adam's
# square-root rule (Malladi et al. 2022, from Adam's SDE), or no dependence on B.
ALPHA_RULES = (Rule("the linear rule", 1.0, "ε ∝ B"), Rule("the square-root rule", 0.5, "ε ∝ √B"),
               Rule("a constant ε", 0.0, "ε independent of B"))
# β = 1: the effective learning rate ε/(1−m) is what sets the noise scale (Smith & Le 2018).
BETA_RULES = (Rule("a constant effective learning rate ε/(1−m)", 1.0, "ε ∝ 1−m"),)
# γ = −1: a constant optimal noise scale εN/(B(1−m)) (Smith & Le 2018); 0: ε* does not depend on N.
GAMMA_RULES = (Rule("Smith & Le's constant noise scale εN/(B(1−m))", -1.0, "ε ∝ 1/N"),
               Rule("an ε independent of N", 0.0, "ε ∝ N⁰"))


def rule_wording(symbol: str, value: float | None, ci, rules: tuple[Rule, ...]) -> str:
    """How ``symbol``'s estimate and 95 % interval ``ci`` stand against ``rules``: consistent with the
    rules whose value the interval holds (all named), excluding the others."""
    if value is None:
        return f"{symbol} is not fitted: no rule to compare with"
    if not ci:
        return (f"{symbol} = {value:.3f} has no 95 % interval: it cannot be held against "
                f"{_join([_short(symbol, r) for r in rules])}")
    low, high = ci
    held = [rule for rule in rules if low <= rule.value <= high]
    excluded = [rule for rule in rules if rule not in held]
    shown = f"{symbol}'s 95 % interval [{low:.3f}, {high:.3f}]"
    if not held:
        return f"{shown} excludes {_join([_short(symbol, r) for r in excluded])}: consistent with no rule"
    text = f"{shown} is consistent with {_long(symbol, held[0])}"
    if len(held) > 1:
        text += f" and also with {_join([_long(symbol, r) for r in held[1:]])}: the data cannot tell them apart"
    if excluded:
        text += f"; it excludes {_join([_short(symbol, r) for r in excluded])}"
    return text


def _long(symbol: str, rule: Rule) -> str:
    return f"{rule.name} ({rule.form}, {symbol} = {_value(rule)})"


def _short(symbol: str, rule: Rule) -> str:
    return f"{rule.name} ({symbol} = {_value(rule)})"


def _value(rule: Rule) -> str:
    return f"{rule.value:g}".replace("-", "−")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
