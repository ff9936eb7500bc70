"""Fuzz targets for the ALG (issue 13): the packet-in path, the codecs, the config loader
and the REST bodies.

Each target is ``run(data: bytes) -> list[Finding]``: it decodes the fuzzer's bytes into
inputs of its own, checks what must hold, and returns what did not (an exception that
escapes is a finding too). ``python -m tests.fuzz`` drives them with atheris (coverage
guided) or with a seeded mutator; ``test_fuzz_smoke.py`` runs a bounded, deterministic
version in ``make test``. docs/fuzzing.md has the how and the figures.

Nothing here is imported by the package: importing ``tests.fuzz`` must not import
``ryu_pptp_alg`` (the runner instruments it at import).
"""
