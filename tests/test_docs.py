from promptzip.cli import reference


def test_readme_cli_reference_matches_help():
    readme = reference.README.read_text(encoding="utf-8")
    assert reference.START in readme and reference.END in readme
    assert reference.updated(readme) == readme, "README's CLI reference is stale: run `make docs`"


def test_readme_starts_with_the_two_commands():
    head = reference.README.read_text(encoding="utf-8")[:1500]
    assert "make demo" in head and "make test" in head


def test_every_command_is_in_the_reference():
    from promptzip.cli import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    listed = {cmd[0] for cmd in reference.COMMANDS if cmd}
    assert names <= listed, names - listed
