def run(quick: bool = False) -> dict[str, object]:
    return {}
