"""The one error type of the quota package: its message is the single line a user sees."""


class QuotaError(Exception):
    pass
