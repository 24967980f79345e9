"""The 20-question opportunity value evaluation in four groups of five (DOMAIN.md)."""

from __future__ import annotations

from aggregates.errors import RuleViolationError

EVALUATION_GROUPS: dict[str, tuple[str, ...]] = {
    "is_there_an_opportunity": (
        "application_clear",
        "operating_profit_known",
        "financial_strength",
        "funds_prepared",
        "compelling_event_clear",
    ),
    "can_we_compete": (
        "formal_criteria_clear",
        "solution_quality",
        "sales_resource_need",
        "relationship_strength",
        "unique_business_value",
    ),
    "can_we_win": (
        "internal_support",
        "executor_credibility",
        "cultural_fit",
        "informal_criteria_clear",
        "executive_alignment",
    ),
    "is_it_worth_winning": (
        "near_term_revenue",
        "long_term_revenue",
        "margin",
        "risk",
        "strategic_value",
    ),
}

EVALUATION_QUESTIONS: tuple[str, ...] = tuple(
    question for questions in EVALUATION_GROUPS.values() for question in questions
)

HIGH_VALUE_THRESHOLD = 10

QUALIFICATION_CRITERIA: tuple[str, ...] = (
    "urgency",
    "purchase_timing",
    "purchase_cycle",
    "decision_maker",
    "budget",
)


def score_evaluation(answers: dict[str, bool]) -> tuple[int, bool]:
    """Score the 20 answers: one point per yes; above 10 is high value."""
    missing = [q for q in EVALUATION_QUESTIONS if q not in answers]
    unknown = [q for q in answers if q not in EVALUATION_QUESTIONS]
    if missing or unknown:
        raise RuleViolationError(
            f"evaluation needs exactly the 20 questions; missing {missing}, unknown {unknown}"
        )
    score = sum(1 for q in EVALUATION_QUESTIONS if answers[q])
    return score, score > HIGH_VALUE_THRESHOLD


def group_scores(answers: dict[str, bool]) -> dict[str, int]:
    """Points per group of five questions."""
    return {
        group: sum(1 for q in questions if answers.get(q))
        for group, questions in EVALUATION_GROUPS.items()
    }
