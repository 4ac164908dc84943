"""The cycle estimate's one error type: each says what is wrong and what to do."""


class CyclesError(Exception):
    """The cycle estimate cannot be made; the message says why and what to pass or install."""
