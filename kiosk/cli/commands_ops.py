"""commands_ops"""


def register(sub) -> None:
    pass
