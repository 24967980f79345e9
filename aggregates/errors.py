"""Domain errors, each with a message a user can act on."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every error the ledger reports to its users."""


class RuleViolationError(DomainError):
    """The command breaks a business rule (e.g. an invalid stage transition)."""


class NotAllowedError(DomainError):
    """The acting person may not do this."""


class NotFoundError(DomainError):
    """The named customer, opportunity, plan, forecast or person does not exist."""


class ConcurrencyConflictError(DomainError):
    """Someone else changed the same record at the same time; reload and retry."""


class DuplicateCustomerError(DomainError):
    """A customer with the same normalised name, tax id, phone or e-mail exists."""

    def __init__(self, existing_customer_id: str, matched_on: str) -> None:
        super().__init__(
            f"customer already registered as {existing_customer_id} (same {matched_on})"
        )
        self.existing_customer_id = existing_customer_id
        self.matched_on = matched_on


class InvalidFieldError(RuleViolationError):
    """A value the ledger cannot store (a control character, a lone surrogate, too
    long, too large, a year out of range…), naming the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class AlreadyIssuedError(DomainError):
    """A secret shown only once was already issued under this command id."""
